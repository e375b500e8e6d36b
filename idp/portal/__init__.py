"""The citizen's own account console: assurance level, evidence, verification."""

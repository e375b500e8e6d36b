"""Legacy migration: each department's user database folded into the one
account space (DESIGN.md, "migration/"; docs/migration.md)."""

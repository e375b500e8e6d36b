"""Relying parties (OAuth 2.0 clients): registration and lookup."""

"""Operator actions on accounts and relying parties (the console and admin API build on these)."""

"""Operator actions on accounts (the console and admin API build on these)."""

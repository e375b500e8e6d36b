"""Accounts, their credentials and (later) verification, legal entities and agents."""

"""Authentication methods, the login flow and SSO sessions."""

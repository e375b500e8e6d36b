"""Registries and gateways the provider calls: typed interfaces (Protocols),
HTTP implementations of the data-sharing gateway protocol, and sandboxes."""

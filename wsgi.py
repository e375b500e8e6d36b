"""WSGI entry point for any WSGI server behind a proxy that buffers request
bodies; ``idp serve`` runs the provider through :mod:`idp.rsgi_bridge`."""

from idp import create_app

app = create_app()

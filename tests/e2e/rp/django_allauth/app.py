"""Serve the django-allauth site on 127.0.0.1:$RP_PORT with Django's
threaded development server (the one its live-server tests use), after
creating its database; prints ``serving <url>`` once it accepts requests."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

django.setup()
call_command("migrate", verbosity=0, interactive=False)
application = get_wsgi_application()
server = ThreadedWSGIServer(("127.0.0.1", int(os.environ["RP_PORT"])), WSGIRequestHandler)
server.set_app(application)
print(f"serving {os.environ['RP_URL']}", flush=True)
server.serve_forever()

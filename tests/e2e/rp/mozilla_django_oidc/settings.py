"""Django settings of a department site using mozilla-django-oidc 5.0, as its
documentation configures it (https://mozilla-django-oidc.readthedocs.io,
"Installation" and "Settings"): the backend, the URLs, the client, the
provider's endpoints (from its discovery document), RS256 with the JWKS
endpoint (the docs require OIDC_OP_JWKS_ENDPOINT for RS256), the SessionRefresh
middleware, token storage and a logout URL method.

Values that differ per run come from the environment the test sets."""

import os

SECRET_KEY = os.environ["RP_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "urls"
USE_TZ = True
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.path.join(os.environ["RP_DATA_DIR"], "site.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "mozilla_django_oidc",  # Load after auth
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # "Validate ID tokens by renewing them": silent re-authentication with
    # prompt=none once OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS have passed.
    "mozilla_django_oidc.middleware.SessionRefresh",
]
AUTHENTICATION_BACKENDS = ("mozilla_django_oidc.auth.OIDCAuthenticationBackend",)

OIDC_RP_CLIENT_ID = os.environ["CLIENT_ID"]
OIDC_RP_CLIENT_SECRET = os.environ["CLIENT_SECRET"]
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ["AUTHORIZATION_ENDPOINT"]
OIDC_OP_TOKEN_ENDPOINT = os.environ["TOKEN_ENDPOINT"]
OIDC_OP_USER_ENDPOINT = os.environ["USERINFO_ENDPOINT"]
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_OP_JWKS_ENDPOINT = os.environ["JWKS_URI"]
# The provider's end_session_endpoint, for provider_logout below.
OIDC_OP_LOGOUT_ENDPOINT = os.environ["END_SESSION_ENDPOINT"]
OIDC_OP_LOGOUT_URL_METHOD = "views.provider_logout"
OIDC_STORE_ACCESS_TOKEN = True
OIDC_STORE_ID_TOKEN = True
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = int(os.environ["RENEW_SECONDS"])

LOGIN_REDIRECT_URL = "/whoami"
LOGOUT_REDIRECT_URL = "/"

# Errors and the library's messages to standard error (the test's log of the app).
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"console": {"class": "logging.StreamHandler"}},
           "root": {"handlers": ["console"], "level": "INFO"}}

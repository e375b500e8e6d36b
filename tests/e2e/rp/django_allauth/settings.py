"""Django settings of a department site using django-allauth 65's
``openid_connect`` provider, as its documentation configures it
(https://docs.allauth.org, "Installation" and "Providers / OpenID
Connect"): the apps, the middleware, the authentication backends, and
``SOCIALACCOUNT_PROVIDERS["openid_connect"]["APPS"]`` with the client and
the provider's ``server_url`` (allauth reads the rest from discovery,
including the client authentication method, ``client_secret_post`` here).
PKCE as the docs' example enables it; tokens stored
(``SOCIALACCOUNT_STORE_TOKENS``, with ``offline_access`` added to the scopes
for a refresh token); signing out sends the browser on to the
provider's end_session endpoint (``ACCOUNT_LOGOUT_REDIRECT_URL``).

Values that differ per run come from the environment the test sets."""

import os
from urllib.parse import urlencode

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
    "django.contrib.messages",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        # allauth's default scopes and offline_access: a refresh token to store.
        "SCOPE": ["openid", "profile", "email", "offline_access"],
        "APPS": [{
            "provider_id": "provincial",
            "name": "Provincial account",
            "client_id": os.environ["CLIENT_ID"],
            "secret": os.environ["CLIENT_SECRET"],
            "settings": {"server_url": os.environ["ISSUER"]},
        }],
    },
}
SOCIALACCOUNT_STORE_TOKENS = True
LOGIN_REDIRECT_URL = "/whoami"
ACCOUNT_LOGOUT_REDIRECT_URL = os.environ["END_SESSION_ENDPOINT"] + "?" + urlencode({
    "client_id": os.environ["CLIENT_ID"],
    "post_logout_redirect_uri": os.environ["RP_URL"] + "/",
})
# allauth mails a link to confirm an e-mail address the provider has not
# verified; a development site prints the mail.
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"console": {"class": "logging.StreamHandler"}},
           "root": {"handlers": ["console"], "level": "INFO"}}

"""Languages of the pages: compiled catalogs and the locale of a request.

The ``.po`` catalogs in ``idp/translations`` are the source; they are compiled
to ``.mo`` under the instance folder at start-up, so no binary file is kept in
the repository and an edited catalog takes effect at the next start.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path

from babel import support
from babel.dates import get_timezone_name
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import has_request_context, request, session
from flask_babel import format_datetime, get_locale, get_timezone, gettext
from flask_babel import lazy_gettext as _l
from wtforms.i18n import messages_path

SOURCE = Path(__file__).parent / "translations"
LOCALES = ("zh", "en")

#: What each error code an error page can show means, in words: the OAuth
#: 2.0 and OpenID Connect codes (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6,
#: OpenID Connect Unmet Authentication Requirements 1.0), the provider's
#: own page errors, and HTTP statuses. The code itself stays in small print.
ERROR_SENTENCES = {
    "invalid_request": _l("The application sent a request that is not valid."),
    "invalid_client": _l("The application is not registered with this service."),
    "invalid_scope": _l("The application asked for access that is not allowed."),
    "unauthorized_client": _l("The application is not allowed to sign you in this way."),
    "unsupported_response_type": _l("The application asked for a kind of answer this "
                                    "service does not give."),
    "access_denied": _l("Access was refused."),
    "server_error": _l("Something went wrong on our side. Try again later."),
    "temporarily_unavailable": _l("The service is busy. Try again in a few minutes."),
    "login_required": _l("You need to sign in first."),
    "consent_required": _l("The application needs your permission before it can continue."),
    "interaction_required": _l("You need to take a further step on this service before the "
                               "application can continue."),
    "request_not_supported": _l("The application sent its request in a form this service "
                                "does not support."),
    "request_uri_not_supported": _l("The application sent its request by reference, which "
                                    "this service does not support."),
    "unmet_authentication_requirements": _l("Your sign-in cannot reach the assurance level "
                                            "the application asks for."),
    "interaction_expired": _l("This sign-in request has expired. Return to the application "
                              "and start again."),
    "csrf": _l("The form has expired or was not sent from this site. Go back, reload the "
               "page and try again."),
    "account_changed": _l("You signed in as someone else meanwhile. Return to the "
                          "application and start again."),
    "invalid_ticket": _l("This sign-in link was used or has expired. Read the card again."),
    "400": _l("The request is not valid."),
    "404": _l("This page does not exist."),
    "405": _l("This page cannot be used this way."),
    "413": _l("What was sent is too large."),
    "429": _l("Too many requests. Wait a minute and try again."),
    "500": _l("Something went wrong on our side. Try again later."),
}

#: Registry answers (connectors.registries result enums) as words.
REGISTRY_ANSWERS = {
    "match": _l("Matches"),
    "mismatch": _l("Does not match"),
    "not_found": _l("Not found"),
    "deceased": _l("Deceased"),
    "cancelled": _l("Cancelled"),
    "revoked": _l("Licence revoked"),
    "representative_mismatch": _l("Not the legal representative"),
    "active": _l("Card valid"),
    "lost": _l("Card reported lost"),
    "suspended": _l("Card suspended"),
    "pass": _l("Passed"),
    "fail": _l("Failed"),
    "retry": _l("Not completed, to be tried again"),
}


def compile_catalogs(target: Path) -> Path:
    """Compile every ``<locale>/LC_MESSAGES/messages.po`` newer than its ``.mo``.

    :param target: folder to write ``<locale>/LC_MESSAGES/messages.mo`` into.
    :returns: ``target``, for ``BABEL_TRANSLATION_DIRECTORIES``.
    """
    for po in SOURCE.glob("*/LC_MESSAGES/messages.po"):
        mo = target / po.relative_to(SOURCE).with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as src:
            catalog = read_po(src)
        tmp = mo.with_suffix(".tmp")
        with tmp.open("wb") as out:
            write_mo(out, catalog)
        tmp.replace(mo)
    return target


def remember_ui_locales(value: str | None) -> None:
    """Keep the first supported language of an ``ui_locales`` parameter
    (OIDC Core §3.1.2.1, space-separated BCP 47 tags) for this browser."""
    for tag in (value or "").split():
        primary = tag.split("-")[0].lower()
        if primary in LOCALES:
            session["ui_locale"] = primary
            return


def select_locale() -> str | None:
    """The page language: the client's ``ui_locales``, else the browser's
    preference; outside a request (CLI), the configured default."""
    if not has_request_context():
        return None
    chosen = session.get("ui_locale")
    if chosen in LOCALES:
        return chosen
    return request.accept_languages.best_match(LOCALES)


def wtforms_translations() -> support.NullTranslations:
    """WTForms' own messages ("This field is required."...) in the page's
    language (:func:`select_locale`), for the forms' ``Meta``
    (:class:`idp.authn.forms.Form`). Each language's catalog is read once
    per process: Flask-WTF's own lookup reads it from disk again for every
    request that builds a form (about 0.3 ms of each login POST and page)."""
    return _wtforms_catalog(str(get_locale()))


@functools.cache
def _wtforms_catalog(locale: str) -> support.NullTranslations:
    # Read-only once loaded, so the threads of a worker share it; a race
    # on the first request loads it twice, harmlessly.
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


def error_sentence(code: str | None) -> str | None:
    """The translated sentence of an error page's ``code``, or None for a
    code without one (the page then shows its generic heading only)."""
    sentence = ERROR_SENTENCES.get(code or "")
    return str(sentence) if sentence is not None else None


def registry_answer(value: str | None) -> str:
    """A registry's answer (``match``, ``lost``...) as a translated word; an
    answer without a word is shown as it is."""
    word = REGISTRY_ANSWERS.get(value or "")
    return str(word) if word is not None else (value or "")


def local_time(value: datetime | None, pattern: str = "yyyy-MM-dd HH:mm",
               zone: bool = False) -> str:
    """A stored time (naive UTC, idp.timeutil) in the configured ``timezone``,
    formatted with the CLDR ``pattern``; with ``zone``, followed by the
    zone's name in the page's language. ``""`` for None."""
    if value is None:
        return ""
    text = format_datetime(value, pattern)
    # Translated, so that Chinese pages bracket the zone's name in full-width
    # brackets like the rest of their text.
    return gettext("%(time)s (%(zone)s)", time=text, zone=time_zone_name()) if zone else text


class LocalTime:
    """A stored time (naive UTC) that reads as :func:`local_time` with the
    zone's name when the message holding it is rendered: for a time inside
    a lazily translated message (``lazy_gettext(..., until=LocalTime(t))``)
    made by a service, which knows no request, its language or time zone."""

    def __init__(self, value: datetime) -> None:
        self.value = value

    def __str__(self) -> str:
        return local_time(self.value, zone=True)


def time_zone_name() -> str:
    """The configured ``timezone``'s name in the page's language (``China
    Time``, ``中国时间``), for a table heading above times."""
    return get_timezone_name(get_timezone(), locale=get_locale())

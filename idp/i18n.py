"""Languages of the pages: compiled catalogs and the locale of a request.

The ``.po`` catalogs in ``idp/translations`` are the source; they are compiled
to ``.mo`` under the instance folder at start-up, so no binary file is kept in
the repository and an edited catalog takes effect at the next start.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import has_request_context, request, session

SOURCE = Path(__file__).parent / "translations"
LOCALES = ("zh", "en")


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

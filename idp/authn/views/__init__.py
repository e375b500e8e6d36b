"""The ``authn`` blueprint: the provider's landing page and the login,
registration and consent pages, one module per login method. Views parse
and render; the decisions are made in the account, throttle and session
services. What the modules share is in :mod:`idp.authn.pages`."""

from __future__ import annotations

from flask import Blueprint, render_template

from idp.runtime import current_runtime
from idp.web import current_sso

bp = Blueprint("authn", __name__)


@bp.get("/")
def home():
    """The provider's own landing page: who is logged in."""
    rt = current_runtime()
    _sso, account = current_sso(rt)
    return render_template("home.html", account=account)


# Each module registers its routes on ``bp`` when imported.
from idp.authn.views import (  # noqa: E402
    consent,
    new_password,
    password,
    second_factor,
    sms,
    step_up,
)

__all__ = ["bp", "consent", "new_password", "password", "second_factor", "sms", "step_up"]

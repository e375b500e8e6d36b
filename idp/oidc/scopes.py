"""What each scope releases, in words a user understands: shown on the
consent page and in the account console's list of relying parties."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

#: Scope -> what granting it releases (translated when rendered).
SCOPE_DESCRIPTIONS = {
    "openid": _l("Know who you are (your account identifier)"),
    "profile": _l("Your name and username"),
    "email": _l("Your e-mail address"),
    "phone": _l("Your phone number"),
    "offline_access": _l("Stay connected when you are not using it"),
    "realname": _l("Your verified real name and identity assurance level"),
    "idcard": _l("Your resident ID number (the full number, as verified)"),
    "legacy": _l("Your user ids in this department's old system"),
}

"""Kiosk login: self-service terminals in service halls log people in by the
resident ID card or social security card they read."""

#: Key of the signed session cookie holding the secret of the card waiting
#: to be linked in this browser (set by the kiosk's link page, read by the
#: account console's link page; a login in such a browser is a public
#: computer's, :func:`idp.authn.service.public_login`). Here rather than in
#: the kiosk's blueprint, so that no blueprint imports another.
LINK_SESSION_KEY = "kiosk_link"

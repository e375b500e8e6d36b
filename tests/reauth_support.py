"""Re-authentication in the account console (``/account/reauth``) for tests
that change how an account signs in: the password and the second factor
again, through the real form."""

from __future__ import annotations

import requests

from tests.helpers import hidden_inputs


def reauth_page(session: requests.Session, base: str,
                next_path: str = "/account/security") -> requests.Response:
    """The re-authentication page, coming back to ``next_path``."""
    return session.get(f"{base}/account/reauth", params={"next": next_path})


def reauth_with_app(session: requests.Session, base: str, password: str, *,
                    code: str | None = None, recovery_code: str | None = None,
                    next_path: str = "/account/security") -> requests.Response:
    """Re-authenticate with the password and a code of the authenticator
    app (or a recovery code); returns the answer to the form (a 303 back to
    ``next_path`` on success)."""
    fields = hidden_inputs(reauth_page(session, base, next_path).text)
    if recovery_code is not None:
        fields.update(password=password, recovery_code=recovery_code, action="recovery")
    else:
        fields.update(password=password, code=code or "", action="verify")
    return session.post(f"{base}/account/reauth", data=fields, allow_redirects=False)


def send_reauth_code(session: requests.Session, base: str,
                     next_path: str = "/account/security") -> requests.Response:
    """Ask for a re-authentication code by SMS to the verified phone."""
    fields = hidden_inputs(reauth_page(session, base, next_path).text)
    fields["action"] = "send"
    return session.post(f"{base}/account/reauth", data=fields, allow_redirects=False)


def reauth_with_sms(session: requests.Session, base: str, gateway, phone: str, password: str,
                    *, next_path: str = "/account/security",
                    code: str | None = None) -> requests.Response:
    """Re-authenticate with the password and a code sent by SMS to
    ``phone`` (read from the sandbox outbox unless ``code`` is given)."""
    from connectors.sandbox import read_outbox

    sent = send_reauth_code(session, base, next_path)
    assert sent.status_code == 200, sent.text[:400]
    if code is None:
        message = read_outbox(gateway.data_path, phone)[-1]
        assert message["template"] == "otp_reauth"
        code = message["params"]["code"]
    fields = hidden_inputs(sent.text)
    fields.update(password=password, sms_code=code, action="verify")
    return session.post(f"{base}/account/reauth", data=fields, allow_redirects=False)

"""The authorization endpoint's policy (OIDC Core §3.1.2): a table of small
named checks that decide whether to log the user in, ask consent, or issue.

Each check states what it enforces and raises the protocol error to send to
the client; nothing here reads Flask globals.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import OAuth2Request, scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError

from idp.accounts.models import Account
from idp.authorizations.consents import has_consent
from idp.oidc.claims import ClaimsRequestError, parse_claims_request
from idp.oidc.interaction import Interaction
from idp.oidc.stepup import StepUpState, evaluate
from idp.oidc.subjects import subject_for
from idp.oidc.tokens import InvalidTokenError, verify_id_token_hint
from idp.runtime import Runtime
from idp.sessions import SsoSession
from idp.timeutil import epoch

PROMPTS = {"none", "login", "consent", "select_account"}
#: Parameters an authorization request may carry (RFC 6749 §4.1.1, RFC 7636 §4.3,
#: OIDC Core §3.1.2.1, §5.5, §6, OAuth 2.0 Multiple Response Types §2.1).
#: Others are dropped, so a saved request holds nothing a client did not mean.
KNOWN_PARAMETERS = frozenset({
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "prompt",
    "max_age", "login_hint", "id_token_hint", "ui_locales", "response_mode", "claims",
    "code_challenge", "code_challenge_method", "acr_values", "display", "claims_locales",
    "request", "request_uri",
})
#: Longest accepted value of one parameter, and of all together, characters:
#: a saved request then costs the store a few kilobytes at most.
MAX_PARAMETER_LENGTH = 2048
MAX_REQUEST_LENGTH = 6144
RESPONSE_MODES = {"query", "form_post"}
#: Scopes the user is always asked about, even by a trusted client.
SENSITIVE_SCOPES = frozenset({"idcard"})


class RequestNotSupportedError(OAuth2Error):
    """OIDC Core §3.1.2.6 ``request_not_supported``."""

    error = "request_not_supported"


class RequestUriNotSupportedError(OAuth2Error):
    """OIDC Core §3.1.2.6 ``request_uri_not_supported``."""

    error = "request_uri_not_supported"


class AuthorizationRequest(OAuth2Request):
    """An authorization request rebuilt from saved parameters, so the same
    request can be validated again after login or consent.

    :param args: parameter name to list of values (duplicates preserved so
        Authlib can reject repeated parameters, RFC 6749 §3.1).
    :param uri: the authorization endpoint URL.
    """

    def __init__(self, args: dict[str, list[str]], uri: str) -> None:
        super().__init__("GET", uri)
        self._args = args
        self.payload = BasicOAuth2Payload({k: v[0] for k, v in args.items() if v})
        self.payload._datalist = defaultdict(list, args)

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return {}


def known_parameters(args: dict[str, list[str]]) -> dict[str, list[str]]:
    """Keep only :data:`KNOWN_PARAMETERS`, each value cut to ``MAX_PARAMETER_LENGTH``.

    A cut value no longer matches anything registered and no longer parses,
    so the request fails its checks instead of being stored in full.
    """
    return {name: [v[:MAX_PARAMETER_LENGTH] for v in values]
            for name, values in args.items() if name in KNOWN_PARAMETERS}


def check_request_size(req: AuthorizationRequest) -> None:
    """The parameters together stay under :data:`MAX_REQUEST_LENGTH`; shown on a
    page because such a request is not a real client's."""
    if sum(len(v) for vs in req.payload.datalist.values() for v in vs) > MAX_REQUEST_LENGTH:
        raise InvalidRequestError("The authorization request is too large.")


def check_no_repeated_parameters(req: AuthorizationRequest, redirect_uri: str) -> None:
    """No parameter may appear more than once (RFC 6749 §3.1)."""
    for name, values in req.payload.datalist.items():
        if len(values) > 1:
            raise InvalidRequestError(f"Parameter '{name}' is repeated.",
                                      redirect_uri=redirect_uri)


@dataclass
class Decision:
    """What the endpoint does next: ``login``, ``change_password``, ``step_up``,
    ``consent`` or ``issue``.

    :ivar claims: the parsed ``claims`` parameter, for ``issue``.
    :ivar acr: the ``acr`` the login achieved, for ``issue``.
    """

    action: str
    claims: dict | None = None
    acr: str | None = None


def _prompts(req: AuthorizationRequest, redirect_uri: str) -> set[str]:
    """``prompt`` is a set of known values; ``none`` stands alone (OIDC Core §3.1.2.1)."""
    values = set((req.payload.data.get("prompt") or "").split())
    if not values <= PROMPTS:
        raise InvalidRequestError("Unknown 'prompt' value.", redirect_uri=redirect_uri)
    if "none" in values and len(values) > 1:
        raise InvalidRequestError("'prompt=none' cannot be combined with other values.",
                                  redirect_uri=redirect_uri)
    return values


def check_request_objects(req: AuthorizationRequest, redirect_uri: str) -> None:
    """Request objects are not supported (OIDC Core §6: the OP says so with an error)."""
    if req.payload.data.get("request"):
        raise RequestNotSupportedError(redirect_uri=redirect_uri)
    if req.payload.data.get("request_uri"):
        raise RequestUriNotSupportedError(redirect_uri=redirect_uri)


def check_response_mode(req: AuthorizationRequest, redirect_uri: str) -> None:
    """Only ``query`` and ``form_post`` responses (OAuth 2.0 Form Post Response Mode)."""
    mode = req.payload.data.get("response_mode")
    if mode and mode not in RESPONSE_MODES:
        raise InvalidRequestError("Unsupported 'response_mode'.", redirect_uri=redirect_uri)


def check_openid_parameters(req: AuthorizationRequest, redirect_uri: str) -> int | None:
    """``max_age`` is a non-negative integer; ``nonce`` is bounded; OpenID
    requests name their ``redirect_uri`` (OIDC Core §3.1.2.1).

    :returns: ``max_age`` in seconds, or None.
    """
    data = req.payload.data
    if "openid" in scope_to_list(data.get("scope") or "") and not data.get("redirect_uri"):
        # Shown on a page: the client did not say where it wants the answer.
        raise InvalidRequestError("Missing 'redirect_uri'.")
    nonce = data.get("nonce")
    if nonce is not None and len(nonce) > 255:
        raise InvalidRequestError("'nonce' is too long.", redirect_uri=redirect_uri)
    raw = data.get("max_age")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise InvalidRequestError("'max_age' must be a non-negative integer.",
                                  redirect_uri=redirect_uri)
    return int(raw)


def max_age_exceeded(max_age: int | None, auth_time: int, now: int) -> bool:
    """Whether an authentication at ``auth_time`` is too old for ``max_age``
    (OIDC Core §3.1.2.1), all in whole epoch seconds.

    Whole seconds know the elapsed time only to within a second, so a tie
    counts as exceeded: the limit is never overrun, and ``max_age=0``, which
    is ``prompt=login`` (OIDC Core 1.0 errata set 2 §3.1.2.1), asks for a
    new login even within the second of the last one.
    """
    return max_age is not None and now - auth_time >= max_age


def check_claims(req: AuthorizationRequest, redirect_uri: str) -> dict | None:
    """The ``claims`` parameter is a JSON object (OIDC Core §5.5)."""
    try:
        return parse_claims_request(req.payload.data.get("claims"))
    except ClaimsRequestError as exc:
        raise InvalidRequestError(str(exc), redirect_uri=redirect_uri) from None


def check_id_token_hint(rt: Runtime, req: AuthorizationRequest, redirect_uri: str,
                        account: Account | None, client) -> bool:
    """An ``id_token_hint`` must be an ID token we issued; returns True when
    it names someone other than the logged-in account as ``client`` sees it
    (a new login is needed).
    """
    hint = req.payload.data.get("id_token_hint")
    if not hint:
        return False
    try:
        claims = verify_id_token_hint(rt, hint)
    except InvalidTokenError:
        raise InvalidRequestError("Invalid 'id_token_hint'.", redirect_uri=redirect_uri) from None
    return account is None or claims["sub"] != subject_for(rt, client, account)


class TemporarilyUnavailableError(OAuth2Error):
    """RFC 6749 §4.1.2.1 ``temporarily_unavailable``."""

    error = "temporarily_unavailable"


#: The window of :func:`issue_rate`, seconds.
ISSUE_RATE_WINDOW = 60


def issue_rate(rt: Runtime, session: SsoSession) -> tuple[str, int, int]:
    """The rate of authorization codes of an SSO session: at most
    ``codes_per_session`` a minute, since each code is a stored grant and no
    person signs in to relying parties that fast. The code is stored only
    within it (:meth:`idp.store.base.Store.put_many_counted`), else
    :class:`TemporarilyUnavailableError`.

    :returns: ``(counter key, window in seconds, limit)``.
    """
    return (f"rl:codes:sid:{session.sid}", ISSUE_RATE_WINDOW,
            rt.settings["throttle"]["codes_per_session"])


class UnmetAuthenticationRequirementsError(OAuth2Error):
    """OpenID Connect Core Unmet Authentication Requirements 1.0 §2: the
    authentication cannot meet the ``acr`` the client asked for."""

    error = "unmet_authentication_requirements"


class InteractionRequiredError(OAuth2Error):
    """OIDC Core §3.1.2.6 ``interaction_required``: a step-up is needed but
    ``prompt=none`` forbids showing a page."""

    error = "interaction_required"


def _requested_value(claims: dict | None, name: str) -> str | None:
    """The ``value`` a claims request asks of ``name`` in the ID token or userinfo."""
    for member in ("id_token", "userinfo"):
        entry = (claims or {}).get(member, {}).get(name)
        if isinstance(entry, dict) and isinstance(entry.get("value"), str):
            return entry["value"]
    return None


def essential_acr(claims: dict | None) -> list[str] | None:
    """The values of an essential ``acr`` request in the ID token member of
    the claims parameter (OIDC Core §5.5.1.1), or None when none is essential
    (or it names no values: then it only asks for the claim, always sent).

    :raises ClaimsRequestError: ``value`` not a string, or ``values`` not a
        non-empty list of strings.
    """
    entry = (claims or {}).get("id_token", {}).get("acr")
    if not isinstance(entry, dict) or entry.get("essential") is not True:
        return None
    if "values" in entry:
        values = entry["values"]
        if not (isinstance(values, list) and values and all(isinstance(v, str) for v in values)):
            raise ClaimsRequestError("claims.id_token.acr.values must be a list of strings")
        return values
    if "value" in entry:
        if not isinstance(entry["value"], str):
            raise ClaimsRequestError("claims.id_token.acr.value must be a string")
        return [entry["value"]]
    return None


def required_level(rt: Runtime, args: dict[str, str], claims: dict | None,
                   client) -> tuple[int, list[str] | None]:
    """The level the request needs: ``acr_values``, an essential ``acr``
    claim and the client's minimum together.

    :returns: ``(level, essential values or None)``.
    """
    essential = essential_acr(claims)
    return (rt.acr.required_level(args.get("acr_values"), essential, client.min_acr),
            essential)


def step_up_state(rt: Runtime, item: Interaction, client, account: Account,
                  amr: list[str]) -> StepUpState:
    """How a login of ``account`` by ``amr`` stands against the level the
    saved request ``item`` needs: :func:`required_level` of its parameters,
    as :func:`check_acr` computed it when it sent the user to step up.

    :param client: the requesting client, as ``rt.clients.get`` finds it.
    """
    args = {k: v[0] for k, v in item.args.items() if v}
    try:
        claims = parse_claims_request(args.get("claims"))
    except ClaimsRequestError:
        # check_claims refused such a request before it was saved.
        claims = None
    required, _essential = required_level(rt, args, claims, client)
    return evaluate(rt, account, amr, required)


def check_acr(rt: Runtime, claims: dict | None, client, args: dict[str, str], account: Account,
              session: SsoSession, prompts: set[str], redirect_uri: str) -> tuple[str | None, int]:
    """Whether the login meets the requested level (OIDC Core §3.1.2.1
    ``acr_values``, §5.5.1.1 essential ``acr``, the client's minimum), and
    the ``acr`` to report.

    :returns: ``(acr, 0)`` when met, or ``(None, level)`` when the user must
        step up to ``level`` (verify more, or add a factor).
    :raises UnmetAuthenticationRequirementsError: the level cannot be reached
        by any step-up (or an essential request names only unknown values).
    :raises InteractionRequiredError: a step-up is needed under ``prompt=none``.
    """
    try:
        required, essential = required_level(rt, args, claims, client)
    except ClaimsRequestError as exc:
        raise InvalidRequestError(str(exc), redirect_uri=redirect_uri) from None
    if essential is not None and essential and not any(
            rt.acr.level_of(v) is not None for v in essential):
        raise UnmetAuthenticationRequirementsError(
            "The requested authentication level is not offered.", redirect_uri=redirect_uri)
    state = evaluate(rt, account, session.amr, required)
    if state.met:
        return rt.acr.reported(state.achieved, essential), 0
    if not state.reachable:
        raise UnmetAuthenticationRequirementsError(
            "The requested authentication level cannot be met.", redirect_uri=redirect_uri)
    if "none" in prompts:
        raise InteractionRequiredError(redirect_uri=redirect_uri)
    return None, state.required


def decide(
    rt: Runtime,
    req: AuthorizationRequest,
    client,
    redirect_uri: str,
    session: SsoSession | None,
    account: Account | None,
    interaction: Interaction | None,
) -> Decision:
    """Run the checks and choose the next step.

    :param session: the browser's live SSO session, if any.
    :param account: the session's account, if active.
    :param interaction: the saved request when resuming after login/consent.
    :raises OAuth2Error: with ``redirect_uri`` set, to be sent to the client
        (``login_required``, ``consent_required``, ``interaction_required``,
        ``unmet_authentication_requirements``, ``invalid_request``...).
    """
    check_request_size(req)
    check_no_repeated_parameters(req, redirect_uri)
    check_request_objects(req, redirect_uri)
    check_response_mode(req, redirect_uri)
    prompts = _prompts(req, redirect_uri)
    max_age = check_openid_parameters(req, redirect_uri)
    claims = check_claims(req, redirect_uri)
    hint_mismatch = check_id_token_hint(rt, req, redirect_uri, account, client)

    requested_sub = _requested_value(claims, "sub")
    if requested_sub is not None and (account is None
                                      or requested_sub != subject_for(rt, client, account)):
        hint_mismatch = True
    fresh = bool(interaction and interaction.login_at and session
                 and session.auth_time >= interaction.created)
    need_login = (
        session is None
        or account is None
        or hint_mismatch
        or ("login" in prompts and not fresh)
        or (max_age_exceeded(max_age, session.auth_time, epoch()) and not fresh)
    )
    if need_login:
        if "none" in prompts:
            raise LoginRequiredError(redirect_uri=redirect_uri)
        return Decision("login")

    if account.password_change_required:
        # The password that logged in fails today's policy (a legacy one):
        # it is replaced before any client receives tokens.
        if "none" in prompts:
            raise InteractionRequiredError(redirect_uri=redirect_uri)
        return Decision("change_password")
    acr, step_up = check_acr(rt, claims, client, req.payload.data, account, session, prompts,
                             redirect_uri)
    if step_up:
        return Decision("step_up")
    scope = client.get_allowed_scope(req.payload.scope or "")
    consented = bool(interaction and interaction.consented_by == account.id)
    asks = not client.trusted or bool(SENSITIVE_SCOPES & set(scope_to_list(scope)))
    need_consent = asks and not consented and (
        "consent" in prompts or not has_consent(account.id, client.client_id, scope)
    )
    if need_consent:
        if "none" in prompts:
            raise ConsentRequiredError(redirect_uri=redirect_uri)
        return Decision("consent")
    return Decision("issue", claims=claims, acr=acr)

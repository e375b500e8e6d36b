"""The account console under ``/account``: the user's level and evidence,
the verification steps, the e-mail address (verified by a link), the
relying parties the user consented to, and how the account signs in
(authenticator app, recovery codes, mobile number, password), which
changes only after a re-authentication (``/account/reauth``). Views parse
and render; the verification and authentication services decide. A
verification made during a step-up returns to the pending authorization
request (``i``). A card read at a kiosk that no account proved possession
of is linked here, after the person signed in on the kiosk
(``/account/link-card``)."""

from __future__ import annotations

from collections.abc import Callable

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from wtforms import Field

from connectors.identifiers import mask_card_number, mask_phone, mask_resident_id
from idp import sessions, single_logout
from idp.accounts import emails, entities, verification
from idp.accounts import service as accounts
from idp.accounts.identifiers import IdentifierError
from idp.audit.service import record
from idp.authn import otp, throttle, totp
from idp.authn import service as authn
from idp.authn.forms import require_min_length
from idp.authn.kiosk import LINK_SESSION_KEY
from idp.authn.kiosk import service as kiosk
from idp.authn.pages import (
    client_of,
    continue_pending,
    pending_interaction,
    send_code_for_form,
    sms_busy,
)
from idp.authorizations import consents
from idp.i18n import local_time
from idp.oidc.scopes import SCOPE_DESCRIPTIONS
from idp.portal.forms import (
    ConfirmEmailForm,
    EmailForm,
    EndAllSessionsForm,
    EndSessionForm,
    EntityForm,
    IdentityForm,
    LinkCardForm,
    PasswordChangeForm,
    PhoneForm,
    ReauthForm,
    StrongProofForm,
    TotpSetupForm,
    WithdrawConsentForm,
)
from idp.portal.session_list import describe
from idp.runtime import current_runtime
from idp.sms_budget import SmsBudgetExhaustedError
from idp.timeutil import from_epoch
from idp.web import (
    allow_frames,
    clear_sso_cookie,
    client_ip,
    current_sso,
    device_cookie,
    keep_browser_known,
    local_next,
    set_sso_cookie,
    too_many_attempts,
)

bp = Blueprint("portal", __name__, url_prefix="/account")

def _signed_in():
    """``(runtime, session, account)``, or a redirect to the login page."""
    rt = current_runtime()
    sso, account = current_sso(rt)
    if account is None:
        # Werkzeug's full_path ends in "?" even without a query string.
        back = request.full_path if request.query_string else request.path
        return rt, None, None, redirect(url_for("authn.login", next=back))
    if account.password_change_required:
        # A password that fails today's policy (a legacy one) is replaced
        # before anything else of the account is used.
        return rt, None, None, redirect(url_for("authn.new_password"))
    return rt, sso, account, None


def _done(item, message: str) -> Response:
    """After a successful step: back to the pending request, or the overview."""
    flash(message, "notice")
    return continue_pending(item, url_for("portal.overview"))


def _identifiers(rt, account) -> dict[str, str | None]:
    """The account's identifiers, masked for display."""
    phone = accounts.phone_number(rt, account)
    number = accounts.resident_id(rt, account)
    card = accounts.card_number(rt, account)
    return {"phone": mask_phone(phone) if phone else None,
            "resident_id": mask_resident_id(number) if number else None,
            "card_number": mask_card_number(card) if card else None}


@bp.get("")
def overview():
    """The account's level, identifiers (masked) and verification evidence."""
    rt, _sso, account, login = _signed_in()
    if login:
        return login
    state = verification.summary(rt, account)
    return render_template(
        "account.html", account=account, state=state, ids=_identifiers(rt, account),
        level_name=verification.level_name(rt, state.level), methods=verification.METHODS,
        gateway=rt.registries.population is not None,
        card_waiting=kiosk.pending_link(rt, session.get(LINK_SESSION_KEY)) is not None)


def _check(run: Callable[[], object], fields: dict[str, Field],
           default: Field) -> tuple[str | None, int] | None:
    """Run one verification for a form: None when it succeeded, else the
    ``(error, status)`` to show the form again with, field errors attached
    to ``fields[name]`` (``default`` for an ID-number or unnamed field)."""
    try:
        run()
    except IdentifierError as exc:
        default.errors.append(exc.message)
        return None, 400
    except accounts.AccountError as exc:
        fields.get(exc.field, default).errors.append(exc.message)
        return None, 400
    except verification.VerificationLimitError as exc:
        minutes = max(1, (exc.retry_after + 59) // 60)
        return _("Too many verification attempts. Try again in %(minutes)d minutes.",
                 minutes=minutes), 429
    except verification.VerificationUnavailableError:
        return _("The verification service is unavailable. Try again later."), 503
    except verification.VerificationFailedError as exc:
        return str(exc.message), 422
    return None


@bp.route("/verify", methods=["GET", "POST"])
def verify_identity():
    """Level 2: name and ID number checked with the population registry.
    On any failure the form is shown again with what was typed."""
    rt, _sso, account, login = _signed_in()
    if login:
        return login
    form = IdentityForm()
    item = pending_interaction(rt, form)
    if request.method == "GET":
        form.i.data = item.id if item else ""
        form.name.data = account.verified_name or account.name
    error, status = None, 200
    if form.validate_on_submit():
        try:
            failed = _check(lambda: verification.verify_population(
                rt, account, form.name.data, form.id_number.data, client_ip()),
                {"name": form.name}, form.id_number)
        except verification.PossessionProofRequiredError:
            # Another account holds the number by name and number only: the
            # strong-proof page offers the proofs that take it over.
            return redirect(url_for("portal.verify_strong", i=item.id if item else None), 303)
        if failed is None:
            return _done(item, _("Your name and ID number are verified."))
        error, status = failed
    elif request.method == "POST":
        status = 400
    return render_template("verify.html", form=form, item=item, client=client_of(rt, item),
                           error=error, gateway=rt.registries.population is not None), status


@bp.route("/verify/strong", methods=["GET", "POST"])
def verify_strong():
    """Level 3: one independent proof of possession (carrier, face), chosen
    by the button pressed; or registering the social security card, which
    makes its number a login identifier and does not lift the level. With a
    pending claim on a number another account holds by name and
    number only, the possession proofs (face, carrier) that take it over."""
    rt, sso, account, login = _signed_in()
    if login:
        return login
    form = StrongProofForm()
    item = pending_interaction(rt, form)
    if request.method == "GET":
        form.i.data = item.id if item else ""
    error, status = None, 200
    proofs = {
        "card": lambda: verification.verify_card(rt, account, form.card_number.data or "",
                                                 client_ip(), amr=sso.amr),
        "carrier": lambda: verification.verify_carrier(rt, account, client_ip()),
        "face": lambda: verification.verify_face(rt, account, form.liveness_token.data or "",
                                                 client_ip()),
    }
    method = request.form.get("method")
    if form.validate_on_submit() and method in proofs:
        failed = _check(proofs[method], {"liveness_token": form.liveness_token},
                        form.card_number)
        if failed is None and method == "card":
            # The card is knowledge: it registers a login identifier and
            # lifts nothing, so the page stays for a proof that does.
            flash(_("Your social security card is registered: you can sign in with its "
                    "number."), "notice")
            return redirect(url_for("portal.verify_strong", i=item.id if item else None), 303)
        if failed is None:
            return _done(item, _("Your identity is strongly verified."))
        error, status = failed
    elif request.method == "POST":
        status = 400
    level = verification.assurance_level(account)
    claim = verification.pending_claim(rt, account) if level < 2 else None
    return render_template("verify_strong.html", form=form, item=item,
                           client=client_of(rt, item), error=error,
                           level=level, ids=_identifiers(rt, account),
                           phone_verified=account.phone_number_verified,
                           claim=mask_resident_id(claim.number) if claim else None,
                           card_refusal=verification.card_check_refusal(account, sso.amr),
                           carrier_refusal=verification.carrier_check_refusal(rt, account),
                           gateway=any(registry is not None for registry in (
                               rt.registries.carrier, rt.registries.face,
                               rt.registries.social_security))), status


@bp.route("/link-card", methods=["GET", "POST"])
def link_card():
    """Link the card read at this kiosk (waiting in this browser) to the
    account signed in after the read, once the card was read again and the
    person confirms; the kiosk service decides (possession outranks
    knowledge)."""
    rt, sso, account, login = _signed_in()
    if login:
        return login
    secret = session.get(LINK_SESSION_KEY)
    card = kiosk.pending_link(rt, secret)
    if card is None:
        session.pop(LINK_SESSION_KEY, None)
        return render_template(
            "error.html", error="no_card",
            description=_("No card is waiting to be linked here. Read the card at the kiosk "
                          "again.")), 400
    if sso.auth_time < card.created:
        # Someone signed in before the card was read (a previous visitor):
        # the card's holder must sign in themselves.
        return redirect(url_for("authn.login", next=url_for("portal.link_card")))
    form = LinkCardForm()
    error, status = None, 200
    if form.validate_on_submit():
        if request.form.get("action") == "cancel":
            kiosk.cancel_link(rt, session.pop(LINK_SESSION_KEY, None))
            return redirect(url_for("portal.overview"), 303)
        try:
            sso = kiosk.link_card(rt, account, sso, secret, client_ip())
        except kiosk.CardLinkError as exc:
            error, status = str(exc.message), 409
        else:
            session.pop(LINK_SESSION_KEY, None)
            flash(_("The card is linked: your account is verified with its ID number."),
                  "notice")
            response = redirect(url_for("portal.overview"), 303)
            set_sso_cookie(rt, response, sso)
            return response
    elif request.method == "POST":
        status = 400
    return render_template("link_card.html", form=form, card=card, error=error,
                           account=account, outcome=kiosk.link_outcome(rt, account, card),
                           ready=card.ready_for(sso)), status


@bp.route("/phone", methods=["GET", "POST"])
def phone():
    """Confirm a mobile number with an SMS code (level 1, and the carrier
    check); replacing a confirmed one, or adding one beside an authenticator
    app, needs a re-authentication first."""
    rt, sso, account, login = _signed_in()
    if login:
        return login
    if authn.phone_change_needs_reauth(account):
        refused = _needs_reauth(rt, sso, url_for("portal.phone",
                                                 i=request.values.get("i") or None))
        if refused is not None:
            return refused
    form = PhoneForm()
    item = pending_interaction(rt, form)
    if request.method == "GET":
        form.i.data = item.id if item else ""
    sent, just_sent, error, status = False, False, None, 200
    if rt.registries.sms is not None and form.validate_on_submit():
        verify = request.form.get("action") == "verify"
        sent = verify
        try:
            if not verify:
                sent, error, status = send_code_for_form(rt, form, "verify_phone",
                                                         device_cookie(rt))
                just_sent = sent and error is None
            elif authn.confirm_phone(rt, account, form.phone.data, form.code.data or "",
                                     form.password.data or "", client_ip(), form.totp.data,
                                     device=device_cookie(rt)):
                flash(_("Your mobile number is changed. Sign in again; verify your "
                        "identity again if its level dropped."), "notice")
                response = redirect(url_for("authn.login", next=url_for("portal.overview")))
                # Signed out, but not a stranger: it proved the password here.
                keep_browser_known(rt, response, sso, account)
                return response
            else:
                return _done(item, _("Your mobile number is confirmed."))
        except authn.LoginFailedError:
            form.password.errors.append(_("The password is incorrect."))
            status = 401
        except throttle.ThrottledError as exc:
            error, status = too_many_attempts(exc.retry_after), 429
        except authn.InvalidCodeError:
            error, status = _("The code is wrong or has expired."), 401
        except accounts.AccountError as exc:
            form.phone.errors.append(exc.message)
            status = 400
    elif request.method == "POST":
        status = 400
    replacing = account.phone_number_verified
    return render_template("phone.html", form=form, item=item, client=client_of(rt, item),
                           sent=sent, just_sent=just_sent, error=error,
                           available=rt.registries.sms is not None, replacing=replacing,
                           has_totp=replacing and totp.has_totp(account)), status


@bp.route("/security", methods=["GET", "POST"])
def security():
    """The second factor: set up an authenticator (QR code), replace the
    recovery codes, or remove it; each only within a re-authentication
    (NIST SP 800-63B §6.1.2.1), never in a kiosk session."""
    rt, sso, account, login = _signed_in()
    if login:
        return login
    form = TotpSetupForm()
    action = request.form.get("action")
    error, status, codes, enrolment = None, 200, None, None
    if form.validate_on_submit():
        try:
            if action == "start":
                enrolment = authn.start_authenticator(rt, sso, account)
            elif action == "confirm":
                codes = authn.confirm_authenticator(rt, sso, account, form.code.data or "",
                                                    client_ip(), device_cookie(rt))
            elif action == "regenerate":
                codes = authn.replace_recovery_codes(rt, sso, account, client_ip())
            elif action == "disable":
                authn.remove_authenticator(rt, sso, account, client_ip())
                flash(_("The authenticator is removed."), "notice")
                return redirect(url_for("portal.security"), 303)
            else:
                error, status = _("Choose what to do."), 400
        except authn.ReauthRequiredError:
            return redirect(url_for("portal.reauth", next=url_for("portal.security")), 303)
        except authn.ReauthUnavailableError as exc:
            error, status = _reauth_refusal(exc), 403
        except totp.TotpError as exc:
            error, status = str(exc.message), 400
        except ValueError:
            error, status = _("The code is wrong."), 401
            if action == "confirm":
                enrolment = totp.start_enrolment(rt, account)
        except throttle.ThrottledError as exc:
            error, status = too_many_attempts(exc.retry_after), 429
    elif request.method == "POST":
        status = 400
    if codes is not None:
        page = Response(render_template("recovery_codes.html", codes=codes,
                                        continue_url=url_for("portal.security")))
        if action == "confirm":
            # Every session ended with the new authenticator, this one too;
            # the browser that set it up stays known to the account.
            keep_browser_known(rt, page, sso, account)
        return page
    return render_template("security.html", form=form, error=error, enrolment=enrolment,
                           enabled=totp.has_totp(account), admin=account.is_admin,
                           remaining=totp.remaining_recovery_codes(account),
                           live=authn.is_reauthenticated(rt, sso),
                           refusal=_refusal(rt, sso, account)), status


@bp.route("/entities", methods=["GET", "POST"])
def entities_page():
    """The enterprises and institutions the user represents, and proving a
    new one (credit code, entity name and the user's verified identity
    checked together by the legal-entity registry)."""
    rt, _sso, account, login = _signed_in()
    if login:
        return login
    form = EntityForm()
    error, status = None, 200
    if form.validate_on_submit():
        failed = _check(lambda: entities.verify_representative(
            rt, account, form.uscc.data, form.entity_name.data, client_ip()),
            {"entity_name": form.entity_name}, form.uscc)
        if failed is None:
            flash(_("You are confirmed as the legal representative."), "notice")
            return redirect(url_for("portal.entities_page"))
        error, status = failed
    elif request.method == "POST":
        status = 400
    return render_template("entities.html", form=form, error=error,
                           representations=entities.representations(account),
                           level=verification.assurance_level(account),
                           required=entities.REPRESENTATIVE_LEVEL,
                           gateway=rt.registries.legal_entity is not None), status


def _reauth_refusal(exc: authn.ReauthUnavailableError) -> str:
    """Why this session cannot re-authenticate, for the user."""
    if exc.reason == "kiosk":
        return _("You signed in with a card at a kiosk. To change how your account signs "
                 "in, sign in on your own device with your password.")
    if exc.reason == "no_password":
        return _("Your account has no password. Set one with a code to your mobile "
                 "number first (reset your password).")
    if exc.reason == "reset_hold":
        until = local_time(from_epoch(exc.until or 0), zone=True)
        return _("Your password was reset by a text message. A code to that same phone "
                 "cannot confirm this change until %(until)s; if you need it sooner, "
                 "visit a service counter with your ID card.", until=until)
    return _("To change how your account signs in, you need a second way to prove it is "
             "you: confirm a mobile number first.")


def _refusal(rt, sso, account) -> str | None:
    """The message when ``sso`` cannot re-authenticate, else None."""
    try:
        authn.reauth_method(rt, sso, account)
    except authn.ReauthUnavailableError as exc:
        return _reauth_refusal(exc)
    return None


def _needs_reauth(rt, sso, back: str) -> Response | tuple[str, int] | None:
    """None when ``sso`` re-authenticated recently; else the page to answer
    with: the re-authentication (coming back to ``back``), or why this
    session never can."""
    try:
        authn.require_reauth(rt, sso)
    except authn.ReauthRequiredError:
        return redirect(url_for("portal.reauth", next=back),
                        303 if request.method == "POST" else 302)
    except authn.ReauthUnavailableError as exc:
        return render_template("error.html", error="reauth_unavailable",
                               description=_reauth_refusal(exc)), 403
    return None


@bp.route("/reauth", methods=["GET", "POST"])
def reauth():
    """Confirm it is you before changing how the account signs in: the
    password and the second factor again (a code of the authenticator app
    or a recovery code; without an app, a code sent to the verified phone).
    Then back to ``next`` (a console page), for ``session.reauth_ttl``
    seconds of changes. A session that never can (a kiosk card read, an
    account without a second factor...) is told why."""
    rt, sso, account, login = _signed_in()
    if login:
        return login
    form = ReauthForm()
    target = (local_next(request.args.get("next") or form.next.data)
              or url_for("portal.security"))
    form.next.data = target
    try:
        method, refusal = authn.reauth_method(rt, sso, account), None
    except authn.ReauthUnavailableError as exc:
        method, refusal = None, _reauth_refusal(exc)
    action = request.form.get("action")
    sent, just_sent, error, status = False, False, None, 200
    if form.validate_on_submit():
        sent = method == "sms" and action in ("verify", "send")
        try:
            if action == "send":
                authn.send_reauth_code(rt, sso, account, client_ip(), device_cookie(rt))
                just_sent = True
            elif action in ("verify", "recovery"):
                recovery = action == "recovery" and method == "totp"
                code = (form.recovery_code.data if recovery else
                        form.sms_code.data if method == "sms" else form.code.data)
                renewed = authn.reauthenticate(rt, sso, account, form.password.data or "",
                                               code or "", recovery=recovery, ip=client_ip(),
                                               device=device_cookie(rt))
                response = redirect(target, 303)
                set_sso_cookie(rt, response, renewed)
                keep_browser_known(rt, response, renewed, account)
                return response
            else:
                error, status = _("Choose what to do."), 400
        except authn.ReauthUnavailableError as exc:
            refusal, status = _reauth_refusal(exc), 403
        except authn.LoginFailedError:
            form.password.errors.append(_("The password is incorrect."))
            status = 401
        except authn.InvalidCodeError:
            error, status = _("The code is wrong or has expired."), 401
        except throttle.ThrottledError as exc:
            error, status = too_many_attempts(exc.retry_after), 429
        except otp.OtpThrottledError as exc:
            # A code already sent stays valid: its field stays on the page.
            error = _("Please wait %(seconds)d seconds before asking for another code.",
                      seconds=exc.retry_after)
            status = 429
        except authn.SmsUnavailableError:
            error, status = _("The text message service is unavailable. Try again later."), 503
            sent = False
        except SmsBudgetExhaustedError:
            error, status, sent = sms_busy(), 503, False
        except IdentifierError as exc:
            error, status, sent = str(exc.message), 400, False
        except ValueError:
            # "send" for an account that confirms with its authenticator app.
            error, status, sent = _("Choose what to do."), 400, False
    elif request.method == "POST":
        status = 400
    phone = accounts.phone_number(rt, account) if method == "sms" and not refusal else None
    return render_template("reauth.html", form=form, refusal=refusal, method=method,
                           sent=sent, just_sent=just_sent, error=error,
                           phone=mask_phone(phone) if phone else None), status


@bp.route("/password", methods=["GET", "POST"])
def password():
    """Change the password: within a re-authentication, with the current
    password typed again. Every other session of the account ends; this
    browser stays signed in."""
    rt, sso, account, login = _signed_in()
    if login:
        return login
    refused = _needs_reauth(rt, sso, url_for("portal.password"))
    if refused is not None:
        return refused
    form = require_min_length(PasswordChangeForm(), rt.settings["passwords"]["min_length"])
    status = 200
    if form.validate_on_submit():
        try:
            renewed = authn.change_password(rt, sso, account, form.current.data,
                                            form.password.data, client_ip(), device_cookie(rt))
        except authn.ReauthRequiredError:
            return redirect(url_for("portal.reauth", next=url_for("portal.password")), 303)
        except authn.LoginFailedError:
            form.current.errors.append(_("The password is incorrect."))
            status = 401
        except accounts.AccountError as exc:
            form.password.errors.append(exc.message)
            status = 400
        except throttle.ThrottledError as exc:
            form.current.errors.append(too_many_attempts(exc.retry_after))
            status = 429
        else:
            flash(_("Your password is changed. You are still signed in here; every other "
                    "sign-in of your account has ended."), "notice")
            response = redirect(url_for("portal.overview"), 303)
            set_sso_cookie(rt, response, renewed)
            keep_browser_known(rt, response, renewed, account)
            return response
    elif request.method == "POST":
        status = 400
    return render_template("password.html", form=form), status


@bp.route("/email", methods=["GET", "POST"])
def email():
    """The account's e-mail address: a link is sent to a new address (the
    password is asked for it) or to the current unverified one; the address
    changes, verified, only when the link is confirmed."""
    rt, _sso, account, login = _signed_in()
    if login:
        return login
    form = EmailForm()
    if request.method == "GET" and not account.email_verified:
        form.email.data = account.email
    error, status = None, 200
    if rt.mail is not None and form.validate_on_submit():
        try:
            pending = emails.send_verification_link(
                rt, account, form.email.data, client_ip(),
                lambda: authn.confirm_password(rt, account, form.password.data or "",
                                               client_ip(), device_cookie(rt)))
        except accounts.AccountError as exc:
            getattr(form, exc.field, form.email).errors.append(exc.message)
            status = 400
        except authn.LoginFailedError:
            form.password.errors.append(_("The password is incorrect."))
            status = 401
        except throttle.ThrottledError as exc:
            error, status = too_many_attempts(exc.retry_after), 429
        except emails.EmailThrottledError as exc:
            error = _("Please wait %(minutes)d minutes before asking for another link.",
                      minutes=max(1, (exc.retry_after + 59) // 60))
            status = 429
        except emails.EmailUnavailableError:
            error, status = _("The e-mail service is unavailable. Try again later."), 503
        else:
            flash(_("We sent a link to %(address)s. Open it to confirm the address; until "
                    "then your account keeps its current one.", address=pending.address),
                  "notice")
            return redirect(url_for("portal.email"), 303)
    elif request.method == "POST":
        status = 400 if rt.mail is not None else 503
    return render_template("email.html", form=form, account=account, error=error,
                           pending=emails.pending_email(rt, account),
                           available=rt.mail is not None,
                           password_asked=bool(account.password_hash)), status


def _invalid_link() -> tuple[str, int]:
    return render_template(
        "error.html", error="invalid_link",
        description=_("This link is invalid, has expired, was already used or was replaced "
                      "by a newer one. Ask for a new link in your account.")), 400


@bp.route("/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email(token: str):
    """The page an e-mail verification link opens, in any browser (the
    token is the proof): it shows the address and the account and changes
    them only on the confirming POST, so a mail scanner opening the link
    changes nothing. Only the account the link was made for changes,
    whoever is signed in here."""
    rt = current_runtime()
    form = ConfirmEmailForm()
    try:
        link = emails.read_link(rt, token)
    except emails.EmailLinkError:
        return _invalid_link()
    _sso, signed_in = current_sso(rt)
    if form.validate_on_submit():
        try:
            link = emails.confirm_link(rt, token, client_ip())
        except emails.EmailLinkError:
            return _invalid_link()
        flash(_("%(address)s is now the verified e-mail address of the account "
                "%(username)s.", address=link.address, username=link.account.username),
              "notice")
        own = signed_in is not None and signed_in.id == link.account.id
        return redirect(url_for("portal.overview" if own else "authn.home"), 303)
    other = signed_in if signed_in is not None and signed_in.id != link.account.id else None
    return render_template("email_confirm.html", form=form, link=link, other=other,
                           token=token)


@bp.get("/apps")
def apps():
    """The relying parties the account consented to, each with what it may
    receive and a button to withdraw the consent."""
    _rt, _sso, account, login = _signed_in()
    if login:
        return login
    return render_template("apps.html", consents=consents.consents_of(account.id),
                           descriptions=SCOPE_DESCRIPTIONS, form=WithdrawConsentForm())


@bp.post("/apps/withdraw")
def withdraw_app():
    """Withdraw the consent to one relying party: its tokens stop working
    and it asks again at the next sign-in."""
    rt, _sso, account, login = _signed_in()
    if login:
        return redirect(url_for("authn.login", next=url_for("portal.apps")))
    form = WithdrawConsentForm()
    if not form.validate_on_submit():
        return render_template("error.html", error="invalid_request",
                               description=_("The form was incomplete. Go back and try "
                                             "again.")), 400
    client = rt.clients.get(form.client_id.data)
    name = client.name if client is not None else form.client_id.data
    if consents.withdraw_consent(rt, account.id, form.client_id.data, client_ip()) is None:
        flash(_("%(name)s has no consent to withdraw.", name=name), "notice")
    else:
        flash(_("Consent withdrawn: %(name)s can no longer use your account, and asks you "
                "again the next time you sign in there.", name=name), "notice")
    return redirect(url_for("portal.apps"), 303)


def _live_sessions(rt, account) -> list[sessions.SsoSession]:
    """The account's sessions of its current generation (an older one is
    ended already, whatever the store still holds)."""
    return [s for s in sessions.list_sessions(rt.store, account.id)
            if s.generation == (account.session_generation or 0)]


@bp.get("/sessions")
def sessions_page():
    """Where the account is logged in: each live session (browser, network,
    start, last use, portals), with "log out" for each and for all."""
    rt, sso, account, login = _signed_in()
    if login:
        return login
    listed = [describe(rt, s, sso.sid) for s in _live_sessions(rt, account)]
    return render_template("sessions.html", listed=listed, form=EndSessionForm(),
                           all_form=EndAllSessionsForm())


def _signed_out_page(rt, frames: list[str]) -> Response:
    """The page after this browser's own session ended here: its portals'
    front-channel logout pages load in hidden frames (Front-Channel Logout
    1.0 §2), and the cookie goes."""
    allow_frames(frames)
    page = Response(render_template("logged_out.html", client=None, frames=frames,
                                    target=None))
    clear_sso_cookie(rt, page)
    return page


@bp.post("/sessions/end")
def end_session():
    """Log out one session of the account: its portals are told (single
    logout); the account's other sessions go on."""
    rt, sso, account, login = _signed_in()
    if login:
        return redirect(url_for("authn.login", next=url_for("portal.sessions_page")))
    form = EndSessionForm()
    if not form.validate_on_submit():
        return render_template("error.html", error="invalid_request",
                               description=_("The form was incomplete. Go back and try "
                                             "again.")), 400
    target = next((s for s in _live_sessions(rt, account) if s.sid == form.sid.data), None)
    if target is None:
        flash(_("That session has ended already."), "notice")
        return redirect(url_for("portal.sessions_page"), 303)
    current = target.sid == sso.sid
    frames = single_logout.frontchannel_uris(rt, target) if current else []
    sessions.end(rt, target, "ended_by_user", revoke_grants=False, ip=client_ip())
    record("session.ended", account_id=account.id, ip=client_ip(), sid=target.sid,
           reason="ended_by_user", current=current)
    if current:
        return _signed_out_page(rt, frames)
    flash(_("That session is logged out."), "notice")
    return redirect(url_for("portal.sessions_page"), 303)


@bp.post("/sessions/end-all")
def end_all_sessions():
    """Log out everywhere: every session of the account, this one too, and
    the portals' tokens (a lost phone, a shared computer left signed in)."""
    rt, sso, account, login = _signed_in()
    if login:
        return redirect(url_for("authn.login", next=url_for("portal.sessions_page")))
    if not EndAllSessionsForm().validate_on_submit():
        return render_template("error.html", error="invalid_request",
                               description=_("The form was incomplete. Go back and try "
                                             "again.")), 400
    frames = single_logout.frontchannel_uris(rt, sso)
    ended = sessions.end_all(rt, account, "ended_by_user", revoke_grants=True, ip=client_ip())
    record("sessions.ended", account_id=account.id, ip=client_ip(), reason="ended_by_user",
           sessions=ended.ended, grants_revoked=ended.grants_revoked)
    return _signed_out_page(rt, frames)

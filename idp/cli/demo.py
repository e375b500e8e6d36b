"""``idp demo``: the provider and two department sites (relying parties) on
127.0.0.1, to show single sign-on and single logout with a demo account.

Everything lives in the instance folder (SQLite database, embedded store),
whatever database or Redis the configuration names, so the demo never touches
real data. It refuses to run in production mode: its account has a published
password.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "plum-blossom-river"
DEMO_NAME = "Demo Citizen"
DEMO_EMAIL = "demo@example.test"
DEMO_FILE = "demo.json"
HOST = "127.0.0.1"
#: The source checkout this package runs from, whose examples/relying_party
#: the demo starts; in an installed wheel, a folder without it.
CHECKOUT = Path(__file__).resolve().parents[2]

#: (client_id, relying party title, port offset from the provider's port)
RELYING_PARTIES = (
    ("demo-civil-affairs", "Department of Civil Affairs", 1),
    ("demo-hr-social-security", "Human Resources and Social Security", 2),
)

#: Port offset of the sandbox gateway (registries and SMS) from the provider's port.
SANDBOX_OFFSET = 3
#: Port offset of the sandbox's SMTP receiver, the demo provider's mail relay.
SMTP_OFFSET = 4
#: Sender of the demo provider's mail.
DEMO_MAIL_FROM = "no-reply@idp.demo.localhost"
#: The demo account's mobile number: the first fixed sandbox person's, so
#: sign-in by SMS code works with the sandbox's outbox.
DEMO_PHONE = "+8613900000001"

#: Ports browsers refuse to open (the Fetch standard's "bad ports", §2.9
#: port blocking; Chromium and Firefox follow it): a demo page on one of
#: them cannot be shown at all, so the demo refuses them up front.
BROWSER_BLOCKED_PORTS = frozenset({
    1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101,
    102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389,
    427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636,
    989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566,
    6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
})

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class DemoError(Exception):
    """The demo cannot be prepared or started; the message says why."""


def _overrides(port: int, instance_path: str | Path | None) -> dict[str, Any]:
    # Empty URLs select the embedded SQLite database and store in the instance folder.
    overrides: dict[str, Any] = {"issuer": f"http://{HOST}:{port}", "database_url": "",
                                 "redis_url": ""}
    if instance_path is not None:
        overrides["instance_path"] = str(instance_path)
    return overrides


def _read_secrets(path: Path) -> dict[str, str]:
    # A missing or damaged file only means the clients get new secrets.
    try:
        secrets = json.loads(path.read_text()).get("client_secrets")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(secrets, dict):
        return {}
    return {k: v for k, v in secrets.items() if isinstance(v, str)}


def _write_secrets(path: Path, secrets: dict[str, str]) -> None:
    # Clear client secrets: readable by the owner only, replaced atomically.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"note": "Clear client secrets of the idp demo relying parties; demo use only.",
                   "client_secrets": secrets}, fh, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _ensure_client(rt, client_id: str, name: str, base_url: str, secret: str | None) -> str:
    """Reuse the demo client if it is registered as wanted and ``secret`` is
    its secret; otherwise (re)create it. Returns the clear secret."""
    from idp.admin.clients import remove_client
    from idp.clients.cache import SECRET_PURPOSE
    from idp.clients.metadata import ClientMetadata
    from idp.clients.service import create_client, find_client
    from idp.extensions import db
    from idp.security import constant_time_equals, keyed_hash

    redirect_uris, logout_uris = [base_url + "/callback"], [base_url + "/"]
    backchannel = base_url + "/backchannel-logout"
    row = find_client(client_id)
    if row is not None:
        # Only a hash is stored, so a secret lost from demo.json cannot be
        # recovered; a changed port needs other redirect URIs. Both: recreate.
        matches = (
            secret is not None and row.secret_hash is not None
            and constant_time_equals(keyed_hash(rt.token_hmac_key, secret, SECRET_PURPOSE),
                                     row.secret_hash)
            and row.name == name and row.trusted
            and row.token_endpoint_auth_method == "client_secret_basic"
            and list(row.redirect_uris or []) == redirect_uris
            and list(row.post_logout_redirect_uris or []) == logout_uris
            and row.backchannel_logout_uri == backchannel
            and row.backchannel_logout_session_required
        )
        if matches:
            return secret
        remove_client(rt, client_id, "demo")
    client, new_secret = create_client(rt, ClientMetadata(
        client_name=name, redirect_uris=redirect_uris, post_logout_redirect_uris=logout_uris,
        trusted=True, id_token_signed_response_alg="ES256", client_id=client_id,
        backchannel_logout_uri=backchannel, backchannel_logout_session_required=True),
        actor="demo")
    db.session.commit()
    rt.keys.ensure((client.id_token_signed_response_alg,))
    assert new_secret is not None
    return new_secret


def _ensure_account(rt) -> None:
    """Create the demo account, or make an existing one usable with the demo password."""
    from idp.accounts.service import (
        create_account,
        find_by_username,
        phone_number,
        set_phone_number,
    )
    from idp.extensions import db

    account = find_by_username(DEMO_USERNAME)
    if account is None:
        account = create_account(rt, DEMO_USERNAME, DEMO_PASSWORD, name=DEMO_NAME,
                                 email=DEMO_EMAIL)
    if phone_number(rt, account) != DEMO_PHONE:
        set_phone_number(rt, account, DEMO_PHONE, verified=True)
    ok, _ = rt.hasher.verify(DEMO_PASSWORD, account.password_hash)
    if not ok:
        account.password_hash = rt.hasher.hash(DEMO_PASSWORD)
    account.status = "active"
    db.session.commit()


def prepare_demo(instance_path: str | Path | None, port: int) -> dict[str, Any]:
    """Register the demo clients and account (idempotent); no process is started.

    Client secrets are stored only hashed, so the clear ones are kept in
    ``<instance>/demo.json`` (mode 0600); a client whose secret is missing
    there, or whose registration does not match ``port``, is recreated.

    :param instance_path: instance folder (None: from the configuration, ./instance).
    :param port: the provider's port; the relying parties use ``port + 1`` and
        ``port + 2``.
    :returns: ``issuer``, ``instance_path``, ``username``, ``password``,
        ``phone``, ``email``, ``relying_parties``: a list of dicts with ``client_id``,
        ``client_secret``, ``title``, ``name``, ``port``, ``base_url``, and
        ``sandbox``: ``url``, ``smtp_port`` and ``data`` (the dataset file).
    :raises DemoError: in production mode or on invalid configuration.
    """
    from idp import create_app
    from idp.config import ConfigError, load_settings
    from idp.runtime import current_runtime

    overrides = _overrides(port, instance_path)
    try:
        # Checked before the http issuer is applied, which production mode
        # would reject with a less helpful message.
        mode = load_settings({k: v for k, v in overrides.items() if k != "issuer"})["mode"]
        if mode == "production":
            raise DemoError("the demo does not run in production mode: it creates an "
                            "account with a published password")
        app = create_app(overrides)
    except ConfigError as exc:
        raise DemoError(f"configuration: {exc}") from None
    with app.app_context():
        rt = current_runtime()
        instance = Path(rt.settings["instance_path"])
        secrets_file = instance / DEMO_FILE
        saved = _read_secrets(secrets_file)
        relying_parties = []
        for client_id, title, offset in RELYING_PARTIES:
            base_url = f"http://{HOST}:{port + offset}"
            name = f"{title} portal"
            secret = _ensure_client(rt, client_id, name, base_url, saved.get(client_id))
            saved[client_id] = secret
            relying_parties.append({"client_id": client_id, "client_secret": secret,
                                    "title": title, "name": name, "port": port + offset,
                                    "base_url": base_url})
        _write_secrets(secrets_file, saved)
        _ensure_account(rt)
    sandbox_data = instance / "sandbox.sqlite3"
    from connectors.sandbox.dataset import DATASET_VERSION, dataset_version, seed

    if dataset_version(sandbox_data) != DATASET_VERSION:
        seed(sandbox_data, people=200, entities=40)
    return {"issuer": rt.issuer, "instance_path": str(instance), "username": DEMO_USERNAME,
            "password": DEMO_PASSWORD, "relying_parties": relying_parties, "phone": DEMO_PHONE,
            "email": DEMO_EMAIL,
            "sandbox": {"url": f"http://{HOST}:{port + SANDBOX_OFFSET}",
                        "smtp_port": port + SMTP_OFFSET, "data": str(sandbox_data)}}


def _port_free(port: int) -> bool:
    # SO_REUSEADDR like the servers themselves, so a port in TIME_WAIT counts as free.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _answers(url: str) -> bool:
    # Imported here: `idp --help` loads this module to list `idp demo`.
    import requests

    try:
        return requests.get(url, timeout=2, allow_redirects=False).status_code == 200
    except requests.RequestException:
        return False


class _Child:
    """A started server process and the URL that answers once it is ready."""

    def __init__(self, label: str, args: list[str], env: dict[str, str], ready_url: str):
        self.label = label
        self.ready_url = ready_url
        # Each server in its own session: Ctrl-C in the terminal reaches only
        # the demo, which then stops each server with one SIGTERM, so no
        # worker gets two different signals from the terminal and its parent.
        self.proc = subprocess.Popen(args, env=env,  # noqa: S603 - fixed argv, no shell
                                     start_new_session=True)


def _wait_ready(children: list[_Child]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    pending = list(children)
    while pending:
        for child in list(pending):
            _check_alive(child)
            if _answers(child.ready_url):
                pending.remove(child)
        if pending and time.monotonic() > deadline:
            names = ", ".join(c.label for c in pending)
            raise DemoError(f"{names} did not answer within {STARTUP_TIMEOUT:.0f} s")
        if pending:
            time.sleep(0.3)


def _check_alive(child: _Child) -> None:
    code = child.proc.poll()
    if code is not None:
        raise DemoError(f"{child.label} stopped with exit status {code} (see its output above)")


def _signal_group(child: _Child, signum: int) -> None:
    try:
        os.killpg(child.proc.pid, signum)
    except ProcessLookupError:
        pass


def _stop(children: list[_Child]) -> None:
    """SIGTERM every child, wait, then SIGKILL each child's whole process
    group (a server and its workers) if it is still running."""
    for child in children:
        if child.proc.poll() is None:
            child.proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"{child.label} did not stop in time; killing it", err=True)
            _signal_group(child, signal.SIGKILL)
            child.proc.wait()
        else:
            # Workers outliving their master would keep the port.
            _signal_group(child, signal.SIGKILL)


def _banner(demo: dict[str, Any]) -> str:
    from connectors.sandbox import DEMO_PEOPLE

    one, two = demo["relying_parties"]
    person = DEMO_PEOPLE[1]
    national = person.phone.removeprefix("+86")
    rule = "=" * 78
    return "\n".join([
        "", rule,
        "  Single sign-on demo is running",
        "",
        f"  Identity provider   {demo['issuer']}/",
        f"  Department site 1   {one['base_url']}/   {one['title']}",
        f"  Department site 2   {two['base_url']}/   {two['title']}",
        f"  Sandbox SMS outbox  {demo['sandbox']['url']}/outbox",
        f"  Sandbox mail outbox {demo['sandbox']['url']}/mail",
        "",
        f"  Demo account        username: {demo['username']}   password: {demo['password']}",
        f"                      mobile: {demo['phone']} (sign in by text message: the code",
        "                      appears in the sandbox outbox)",
        "",
        "  Try it:",
        "   1. Open site 1 and log in with the provincial account (demo account).",
        "   2. Open site 2 and click log in: you are logged in without a password.",
        "   3. Log out from either site: this ends the SSO session at the provider,",
        "      which tells the other site (back-channel logout): reload it, you are",
        "      logged out there too; the next log in asks for the password again.",
        f"      {demo['issuer']}/account/sessions lists where you are logged in.",
        "",
        "  Real-name identity (the sandbox's synthetic registries):",
        f"   4. Register at {demo['issuer']}/register/sms with the mobile number {national}",
        "      (the code appears in the sandbox outbox).",
        f"   5. At {demo['issuer']}/account verify with the name {person.name} and the",
        f"      ID number {person.id_number}: the account reaches level L2.",
        f"   6. Sign out, then sign in with the ID number {person.id_number} and your",
        "      password.",
        "   7. On a site, choose the service that needs level L3: the provider asks",
        "      for a proof of possession (\"Ask the carrier\": the sandbox carrier has",
        f"      {national} registered to that person) and a second factor, then the",
        "      site shows acr L3 and the verified name.",
        "",
        "  Account basics:",
        f"   8. Signed in as {demo['username']}, open {demo['issuer']}/account/email and send a",
        f"      verification link to {demo['email']} (or another address): the mail",
        "      appears in the sandbox mail outbox; open its link and confirm.",
        "",
        f"  Data: {demo['instance_path']} (client secrets in {DEMO_FILE})",
        "  Press Ctrl-C to stop.",
        rule, "",
    ])


def _on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def run_demo(port: int) -> None:
    """Prepare the demo data, start the provider (granian) and the two
    relying parties, print how to use them, and run until Ctrl-C or SIGTERM,
    then stop them.

    :raises click.ClickException: when not run from a source checkout, a port
        is taken, the configuration is unusable or a server fails to start
        (exit status 1).
    """
    if not (CHECKOUT / "examples" / "relying_party" / "app.py").is_file():
        raise click.ClickException(
            "idp demo runs the example relying parties of examples/relying_party, which only a "
            "source checkout holds (an installed wheel does not): run `make demo` there")

    # Pages a browser opens: the provider, the relying parties and the sandbox's
    # outboxes; then the SMTP receiver, which only the provider talks to.
    web = [port] + [port + offset for _, _, offset in RELYING_PARTIES] + [port + SANDBOX_OFFSET]
    ports = web + [port + SMTP_OFFSET]
    if port < 1 or ports[-1] > 65535:
        raise click.ClickException(f"--port must be between 1 and {65535 - SMTP_OFFSET}")
    blocked = [str(p) for p in web if p in BROWSER_BLOCKED_PORTS]
    if blocked:
        raise click.ClickException(
            f"{'ports' if len(blocked) > 1 else 'port'} {', '.join(blocked)} "
            f"{'are' if len(blocked) > 1 else 'is'} blocked by web browsers (Chromium and "
            f"Firefox refuse them); the demo needs ports {ports[0]}-{ports[-1]}: choose "
            "another --port, e.g. 8000.")
    busy = [str(p) for p in ports if not _port_free(p)]
    if busy:
        raise click.ClickException(
            f"{'ports' if len(busy) > 1 else 'port'} {', '.join(busy)} on {HOST} already in "
            f"use; the demo needs ports {ports[0]}-{ports[-1]} (change them with --port).")

    # SIGINT too: a shell starting the demo in the background ignores it, and
    # then Python would not turn Ctrl-C (or kill -INT) into KeyboardInterrupt.
    stop_signals = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
                    if s]
    previous = {sig: signal.signal(sig, _on_signal) for sig in stop_signals}
    children: list[_Child] = []
    failed: str | None = None
    try:
        demo = prepare_demo(None, port)
        env = dict(os.environ, PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join(
                       p for p in (str(CHECKOUT), os.environ.get("PYTHONPATH")) if p))
        from idp.cli.sandbox import DEV_ACCESS_KEY, DEV_SECRET

        sandbox = demo["sandbox"]
        children.append(_Child(
            "the sandbox gateway",
            [sys.executable, "-c", "from idp.cli import main; main(prog_name='idp')",
             "sandbox", "serve", "--port", str(port + SANDBOX_OFFSET), "--smtp-port",
             str(sandbox["smtp_port"]), "--path", sandbox["data"], "--outbox-page"],
            dict(env, IDP_SANDBOX_KEYS=f"{DEV_ACCESS_KEY}={DEV_SECRET}"),
            sandbox["url"] + "/outbox"))
        provider_env = dict(env, IDP_ISSUER=demo["issuer"], IDP_INSTANCE_PATH=demo["instance_path"],
                            IDP_DATABASE_URL="", IDP_REDIS_URL="",
                            IDP_GATEWAY__URL=sandbox["url"],
                            IDP_GATEWAY__ACCESS_KEY=DEV_ACCESS_KEY,
                            IDP_GATEWAY__SECRET=DEV_SECRET,
                            IDP_MAIL__HOST=HOST, IDP_MAIL__PORT=str(sandbox["smtp_port"]),
                            IDP_MAIL__SECURITY="none", IDP_MAIL__USERNAME="",
                            IDP_MAIL__PASSWORD="", IDP_MAIL__FROM_ADDRESS=DEMO_MAIL_FROM)
        children.append(_Child(
            "the identity provider",
            [sys.executable, "-c", "from idp.cli import main; main(prog_name='idp')",
             "serve", "--host", HOST, "--port", str(port)],
            provider_env, demo["issuer"] + "/.well-known/openid-configuration"))
        for rp in demo["relying_parties"]:
            rp_env = dict(env, RP_ISSUER=demo["issuer"], RP_CLIENT_ID=rp["client_id"],
                          RP_CLIENT_SECRET=rp["client_secret"], RP_BASE_URL=rp["base_url"],
                          RP_TITLE=rp["title"], RP_PORT=str(rp["port"]))
            children.append(_Child(f"{rp['title']} (relying party)",
                                   [sys.executable, "-m", "examples.relying_party.app"],
                                   rp_env, rp["base_url"] + "/"))
        _wait_ready(children)
        click.echo(_banner(demo))
        while True:
            for child in children:
                _check_alive(child)
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("\nStopping the demo...", err=True)
    except DemoError as exc:
        failed = str(exc)
    finally:
        # A second Ctrl-C must not cut the cleanup short; _stop kills what
        # does not stop in time anyway.
        for sig in stop_signals:
            signal.signal(sig, signal.SIG_IGN)
        _stop(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise click.ClickException(failed)
    click.echo("Demo stopped.", err=True)


@click.command()
@click.option("--port", default=5000, show_default=True, type=int,
              help="Provider port; the relying parties use the next two ports.")
def demo(port: int) -> None:
    """Start the provider and two department sites (relying parties) with a demo
    account (SSO demo)."""
    run_demo(port)

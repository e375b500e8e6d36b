"""``idp demo``: idempotent preparation of its clients and account, refusal
on a taken port, and the real command end to end (provider and relying
parties as child processes, SSO across both relying parties, clean shutdown)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner

from idp.cli.demo import CHECKOUT, DEMO_PASSWORD, DEMO_USERNAME, DemoError, prepare_demo
from tests.helpers import hidden_inputs

PORT = 5300  # prepare_demo only writes registrations; nothing listens


def _runtime_app(instance, port=PORT):
    from idp import create_app

    return create_app({"issuer": f"http://127.0.0.1:{port}", "instance_path": str(instance),
                       "database_url": "", "redis_url": ""})


def _secret_valid(instance, client_id: str, secret: str) -> bool:
    app = _runtime_app(instance)
    with app.app_context():
        client = app.extensions["idp"].clients.get(client_id)
        return client is not None and client.check_client_secret(secret)


def test_prepare_demo_is_idempotent(tmp_path):
    first = prepare_demo(tmp_path, PORT)
    assert [p["client_id"] for p in first["relying_parties"]] == [
        "demo-civil-affairs", "demo-hr-social-security"]
    assert [p["port"] for p in first["relying_parties"]] == [PORT + 1, PORT + 2]
    assert first["issuer"] == f"http://127.0.0.1:{PORT}"
    demo_file = tmp_path / "demo.json"
    assert stat.S_IMODE(demo_file.stat().st_mode) == 0o600

    second = prepare_demo(tmp_path, PORT)
    assert second == first  # same ids, same secrets, nothing recreated
    app = _runtime_app(tmp_path)
    with app.app_context():
        from sqlalchemy import func, select

        from idp.accounts.service import check_password
        from idp.audit.models import AuditEvent
        from idp.extensions import db

        rt = app.extensions["idp"]
        for rp in second["relying_parties"]:
            client = rt.clients.get(rp["client_id"])
            assert client.check_client_secret(rp["client_secret"])
            assert client.trusted
            # Issue 7: the relying parties follow the recommendation, not the RS256 default.
            assert client.alg == "ES256"
            assert client.redirect_uris == (f"{rp['base_url']}/callback",)
            assert client.post_logout_redirect_uris == (f"{rp['base_url']}/",)
        assert check_password(rt, DEMO_USERNAME, DEMO_PASSWORD) is not None
        created = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event.in_(["client.created", "account.created"])))
        assert created == 3


def test_lost_secrets_are_rotated(tmp_path):
    first = prepare_demo(tmp_path, PORT)
    (tmp_path / "demo.json").unlink()
    second = prepare_demo(tmp_path, PORT)
    for old, new in zip(first["relying_parties"], second["relying_parties"], strict=True):
        assert new["client_id"] == old["client_id"]
        assert new["client_secret"] != old["client_secret"]
        assert _secret_valid(tmp_path, new["client_id"], new["client_secret"])
        assert not _secret_valid(tmp_path, old["client_id"], old["client_secret"])
    saved = json.loads((tmp_path / "demo.json").read_text())["client_secrets"]
    assert saved == {p["client_id"]: p["client_secret"] for p in second["relying_parties"]}

    # A secret that does not match the stored hash is rotated too.
    saved["demo-civil-affairs"] = "wrong"
    (tmp_path / "demo.json").write_text(json.dumps({"client_secrets": saved}))
    third = prepare_demo(tmp_path, PORT)["relying_parties"]
    assert third[0]["client_secret"] not in ("wrong", saved["demo-civil-affairs"])
    assert third[1]["client_secret"] == second["relying_parties"][1]["client_secret"]
    assert _secret_valid(tmp_path, "demo-civil-affairs", third[0]["client_secret"])


def test_other_port_reregisters_redirect_uris(tmp_path):
    prepare_demo(tmp_path, PORT)
    moved = prepare_demo(tmp_path, 6400)
    app = _runtime_app(tmp_path, 6400)
    with app.app_context():
        client = app.extensions["idp"].clients.get("demo-civil-affairs")
        assert client.redirect_uris == ("http://127.0.0.1:6401/callback",)
        assert client.check_client_secret(moved["relying_parties"][0]["client_secret"])


def test_demo_password_is_restored(tmp_path):
    prepare_demo(tmp_path, PORT)
    app = _runtime_app(tmp_path)
    with app.app_context():
        from idp.accounts.service import find_by_username
        from idp.extensions import db

        account = find_by_username(DEMO_USERNAME)
        account.password_hash = app.extensions["idp"].hasher.hash("something else")
        account.status = "suspended"
        db.session.commit()
    prepare_demo(tmp_path, PORT)
    with app.app_context():
        from idp.accounts.service import check_password, find_by_username

        assert find_by_username(DEMO_USERNAME).is_active
        assert check_password(app.extensions["idp"], DEMO_USERNAME, DEMO_PASSWORD)


def test_refuses_production_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("IDP_MODE", "production")
    monkeypatch.setenv("IDP_ISSUER", "https://id.example.test")
    for name in ("SECRET_KEY", "KEY_ENCRYPTION_KEY", "TOKEN_HMAC_KEY"):
        monkeypatch.setenv(f"IDP_SECRETS__{name}", "a" * 43)
    with pytest.raises(DemoError, match="production mode"):
        prepare_demo(tmp_path, PORT)
    assert not (tmp_path / "demo.json").exists()


def _free_run(count: int = 5) -> int:
    """A port p such that p .. p+count-1 are free on 127.0.0.1."""
    for _ in range(50):
        port = random.randint(20000, 60000)
        socks = []
        try:
            for offset in range(count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port range")


def test_port_in_use_is_a_clear_error(tmp_path, monkeypatch):
    from idp.cli import main

    monkeypatch.setenv("IDP_INSTANCE_PATH", str(tmp_path))
    port = _free_run()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port + 1))
        sock.listen()
        result = CliRunner().invoke(main, ["demo", "--port", str(port)])
    assert result.exit_code == 1
    assert f"port {port + 1} on 127.0.0.1 already in use" in result.output
    assert not (tmp_path / "demo.json").exists()  # nothing prepared, nothing started


def test_ports_browsers_refuse_are_refused(tmp_path, monkeypatch):
    """Regression: the README's example port, 6000, is one Chromium and
    Firefox refuse to open; the demo started there and could not be used."""
    from idp.cli import main

    monkeypatch.setenv("IDP_INSTANCE_PATH", str(tmp_path))
    with socket.socket() as sock:
        # Held, so that code without the check stops at "in use" instead of starting.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 5998))
        sock.listen()
        result = CliRunner().invoke(main, ["demo", "--port", "5998"])
    assert result.exit_code == 1
    assert ("port 6000 is blocked by web browsers (Chromium and Firefox refuse them); the "
            "demo needs ports 5998-6002: choose another --port, e.g. 8000.") in result.output
    assert not (tmp_path / "demo.json").exists()


def test_readme_and_make_use_a_port_browsers_open():
    from idp.cli.demo import BROWSER_BLOCKED_PORTS

    readme = (CHECKOUT / "README.md").read_text()
    ports = [int(p) for p in re.findall(r"idp demo --port (\d+)", readme)]
    ports += [int(p) for p in re.findall(r"make demo PORT=(\d+)", readme)]
    assert ports and not any(p + offset in BROWSER_BLOCKED_PORTS
                             for p in ports for offset in range(4))
    dry_run = subprocess.run(["make", "-n", "demo", "PORT=8123"], cwd=CHECKOUT,
                             capture_output=True, text=True, timeout=60)
    assert dry_run.returncode == 0, dry_run.stderr
    assert ".venv/bin/idp demo --port 8123" in dry_run.stdout


def test_readme_lists_every_users_command():
    """Regression: the command table left out ``users list --review`` and
    ``users clear-review``."""
    from idp.cli import main

    readme = (CHECKOUT / "README.md").read_text()
    table = readme.split("## Command line", 1)[1].split("```")[1]
    for name in main.commands["users"].commands:
        assert re.search(rf"^idp users (?:[\w-]+\|)*{re.escape(name)}\b", table, re.M), name
    assert "idp users list --review" in table


def test_readme_raises_the_registration_limit_for_the_demo(tmp_path, monkeypatch):
    """The README's way to register more often in the demo: the variable
    overrides the setting on top of the demo's own overrides (the demo's
    provider process inherits the environment, ``run_demo``)."""
    from idp.cli.demo import _overrides
    from idp.config import load_settings

    readme = " ".join((CHECKOUT / "README.md").read_text().split())
    assert "`IDP_THROTTLE__REGISTRATIONS_PER_IP=100 make demo`" in readme
    assert "counts against `throttle.registrations_per_ip`: 10 an hour" in readme
    assert load_settings(_overrides(5000, tmp_path), environ={})["throttle"][
        "registrations_per_ip"] == 10
    monkeypatch.setenv("IDP_THROTTLE__REGISTRATIONS_PER_IP", "100")
    assert load_settings(_overrides(5000, tmp_path))["throttle"]["registrations_per_ip"] == 100


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "idp demo exited early"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


def _outbox_code(sandbox: str) -> str:
    return re.search(r"<td>(\d{6})</td>", requests.get(f"{sandbox}/outbox").text).group(1)


def _real_name_walkthrough(provider: str, rp: str, sandbox: str, banner: str) -> None:
    """Steps 4-7 of the banner: registration by phone, verification to level
    2, login with the ID number, a relying party asking for level 3."""
    from connectors.sandbox import DEMO_PEOPLE

    person = DEMO_PEOPLE[1]
    national = person.phone.removeprefix("+86")
    assert national in banner and person.id_number in banner and person.name in banner
    reg = requests.Session()
    form = reg.get(f"{provider}/register/sms")
    sent = reg.post(f"{provider}/register/sms", data={
        **hidden_inputs(form.text), "phone": national, "action": "send"})
    done = reg.post(f"{provider}/register/sms", data={
        **hidden_inputs(sent.text), "phone": national, "code": _outbox_code(sandbox),
        "username": "lina", "name": person.name, "password": "lotus-pond-lantern",
        "confirm": "lotus-pond-lantern", "action": "verify"})
    assert done.status_code == 200 and done.url == f"{provider}/"
    form = reg.get(f"{provider}/account/verify")
    verified = reg.post(f"{provider}/account/verify", data={
        **hidden_inputs(form.text), "name": person.name, "id_number": person.id_number})
    assert verified.url == f"{provider}/account" and 'data-level="2"' in verified.text
    # A new browser signs in with the ID number.
    browser = requests.Session()
    page = browser.get(f"{rp}/login", params={"level": "L3"})
    step_up = browser.post(f"{provider}/login", data={
        **hidden_inputs(page.text), "username": person.id_number,
        "password": "lotus-pond-lantern"})
    assert "/login/step-up" in step_up.url
    strong_url = re.search(r'id="verify" href="([^"]+)"', step_up.text).group(1)
    strong = browser.get(provider + strong_url.replace("&amp;", "&"))
    factor = browser.post(f"{provider}/account/verify/strong", data={
        **hidden_inputs(strong.text), "method": "carrier"})
    assert "/login/step-up" in factor.url and 'value="send_sms"' in factor.text
    sent = browser.post(f"{provider}/login/step-up", data={
        **hidden_inputs(factor.text), "action": "send_sms"})
    home = browser.post(f"{provider}/login/step-up", data={
        **hidden_inputs(sent.text), "action": "sms", "code": _outbox_code(sandbox)})
    assert home.url == f"{rp}/", home.url
    assert '<td id="acr">L3' in home.text and person.name in home.text


def _email_walkthrough(provider: str, sandbox: str) -> None:
    """Step 8 of the banner: the demo account's e-mail address verified by a
    link that the provider mails through the sandbox's SMTP receiver."""
    from idp.cli.demo import DEMO_EMAIL

    browser = requests.Session()
    page = browser.get(f"{provider}/account/email")
    page = browser.post(page.url, data={**hidden_inputs(page.text),
                                        "username": DEMO_USERNAME, "password": DEMO_PASSWORD})
    assert page.url == f"{provider}/account/email", page.url
    sent = browser.post(page.url, data={**hidden_inputs(page.text), "email": DEMO_EMAIL})
    assert sent.status_code == 200 and f"We sent a link to {DEMO_EMAIL}" in sent.text
    outbox = requests.get(f"{sandbox}/mail").text
    link = re.search(rf'<a href="({re.escape(provider)}/account/email/confirm/[\w-]+)"',
                     outbox).group(1)
    confirm = browser.get(link)
    done = browser.post(link, data=hidden_inputs(confirm.text))
    assert done.url == f"{provider}/account"
    assert f"{DEMO_EMAIL} is now the verified e-mail address" in done.text


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")
def test_demo_command_end_to_end(tmp_path):
    port = _free_run()
    env = dict(os.environ, IDP_INSTANCE_PATH=str(tmp_path / "instance"))
    log = (tmp_path / "demo.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from idp.cli import main; main(prog_name='idp')",
         "demo", "--port", str(port)],
        cwd=CHECKOUT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)  # its own group, so the test can tell when all are gone
    provider, rp1, rp2 = (f"http://127.0.0.1:{port + i}" for i in range(3))
    try:
        _wait_for(f"{rp2}/", proc)
        deadline = time.monotonic() + 10
        while "Press Ctrl-C" not in (tmp_path / "demo.log").read_text():
            assert time.monotonic() < deadline, "no banner"
            time.sleep(0.2)
        banner = (tmp_path / "demo.log").read_text()
        sandbox = f"http://127.0.0.1:{port + 3}"
        for text in (provider, rp1, rp2, DEMO_USERNAME, DEMO_PASSWORD,
                     f"{sandbox}/outbox", f"{sandbox}/mail", f"{provider}/account/email"):
            assert text in banner

        # Sign-in by SMS through the sandbox gateway: the code is on the outbox page.
        sms = requests.Session()
        form = sms.get(f"{provider}/login/sms")
        sent = sms.post(f"{provider}/login/sms", data={
            **hidden_inputs(form.text), "phone": "13900000001", "action": "send"})
        assert sent.status_code == 200
        outbox = requests.get(f"{sandbox}/outbox").text
        code = re.search(r"<td>(\d{6})</td>", outbox).group(1)
        signed_in = sms.post(f"{provider}/login/sms", data={
            **hidden_inputs(sent.text), "phone": "13900000001", "code": code,
            "action": "verify"}, allow_redirects=False)
        assert signed_in.status_code == 303

        browser = requests.Session()
        page = browser.get(f"{rp1}/login")
        assert page.url.startswith(f"{provider}/login")
        home = browser.post(f"{provider}/login", data={
            **hidden_inputs(page.text), "username": DEMO_USERNAME, "password": DEMO_PASSWORD})
        assert home.url == f"{rp1}/" and "Demo Citizen" in home.text
        home = browser.get(f"{rp2}/login")
        assert home.url == f"{rp2}/" and "Demo Citizen" in home.text
        back = browser.post(f"{rp2}/logout", data=hidden_inputs(home.text))
        assert back.url.startswith(f"{rp2}/?state=") and "logged out" in back.text
        assert browser.get(f"{rp1}/login").url.startswith(f"{provider}/login")

        _real_name_walkthrough(provider, rp1, sandbox, banner)
        _email_walkthrough(provider, sandbox)

        # SIGTERM to the demo alone: it must stop its children itself.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while _group_alive(proc.pid):
            assert time.monotonic() < deadline, "a child of idp demo is still running"
            time.sleep(0.2)
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()

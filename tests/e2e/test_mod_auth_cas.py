"""CAS with Apache's ``mod_auth_cas`` (Debian's libapache2-mod-auth-cas),
a CAS client nobody here wrote, in a real Apache on 127.0.0.1: a protected
location logs in through the provider's ``/cas/login``, validates the
ticket at ``/cas/serviceValidate`` from Apache's side, and loses its
session when the provider's single logout names the ticket."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.helpers import hidden_inputs

MODULES = Path("/usr/lib/apache2/modules")
APACHE = shutil.which("apache2") or "/usr/sbin/apache2"

pytestmark = pytest.mark.skipif(
    not (MODULES / "mod_auth_cas.so").is_file() or not Path(APACHE).is_file(),
    reason="apache2 and libapache2-mod-auth-cas are not installed (.ci/run installs them)")

CONFIG = """
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {root}/httpd.pid
ErrorLog {root}/error.log
LogLevel warn auth_cas:debug
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule headers_module {modules}/mod_headers.so
LoadModule auth_cas_module {modules}/mod_auth_cas.so
User www-data
Group www-data
DocumentRoot {root}/htdocs
<Directory {root}/htdocs>
    Require all granted
</Directory>
CASCookiePath {root}/cas/
CASLoginURL {provider}/cas/login
CASValidateURL {provider}/cas/serviceValidate
CASVersion 2
CASSSOEnabled On
CASDebug On
<Location /secure>
    AuthType CAS
    Require valid-user
    Header always set X-Remote-User "expr=%{{REMOTE_USER}}"
</Location>
"""


@pytest.fixture
def apache(provider):
    """Apache with mod_auth_cas protecting /secure, registered as a CAS
    service (a prefix): ``(base URL, client id)``."""
    root = Path(tempfile.mkdtemp(prefix="mod-auth-cas-", dir="/tmp"))
    os.chmod(root, 0o755)
    (root / "htdocs" / "secure").mkdir(parents=True)
    (root / "htdocs" / "secure" / "index.html").write_text("protected page\n")
    (root / "cas").mkdir()
    os.chmod(root / "cas", 0o777)
    port = free_port()
    config = root / "httpd.conf"
    config.write_text(CONFIG.format(port=port, root=root, modules=MODULES,
                                    provider=provider.url))
    base = f"http://127.0.0.1:{port}"
    client = provider.create_client(cas=f"{base}/secure/")
    process = subprocess.Popen([APACHE, "-f", str(config), "-DFOREGROUND"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(f"{base}/", timeout=1)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                error = (root / "error.log").read_text() if (root / "error.log").exists() else ""
                raise AssertionError(f"apache did not start: {process.stderr.read()!r} "
                                     f"{error}") from None
            time.sleep(0.1)
    yield base, client.client_id, root
    process.terminate()
    process.wait(10)
    process.stderr.close()
    shutil.rmtree(root, ignore_errors=True)


def test_mod_auth_cas_logs_in_and_is_logged_out_by_single_logout(provider, apache):
    base, _client_id, root = apache
    username, password, _ = provider.create_account()
    browser = requests.Session()
    page = browser.get(f"{base}/secure/index.html")
    assert page.url.startswith(f"{provider.url}/login"), page.url
    fields = hidden_inputs(page.text)
    fields.update(username=username, password=password)
    page = browser.post(f"{provider.url}/login", data=fields)
    assert page.status_code == 200, (page.url, (root / "error.log").read_text()[-2000:])
    assert page.text == "protected page\n"
    with provider.app.app_context():
        from idp.accounts.service import find_by_username

        subject = find_by_username(username).subject
    # Registered with public subjects: the user is the account's sub.
    assert page.headers["X-Remote-User"] == subject
    # Apache keeps its own session (a cookie); the provider's logout ends it.
    assert browser.get(f"{base}/secure/index.html", allow_redirects=False).status_code == 200
    confirm = browser.get(f"{provider.url}/cas/logout")
    browser.post(f"{provider.url}/cas/logout",
                 data={**hidden_inputs(confirm.text), "confirm": "yes"})
    deadline = time.monotonic() + 15
    while browser.get(f"{base}/secure/index.html", allow_redirects=False).status_code == 200:
        assert time.monotonic() < deadline, (root / "error.log").read_text()[-2000:]
        time.sleep(0.2)
    again = browser.get(f"{base}/secure/index.html", allow_redirects=False)
    assert again.status_code == 302
    assert again.headers["Location"].startswith(f"{provider.url}/cas/login?service=")

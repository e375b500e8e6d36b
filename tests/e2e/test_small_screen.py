"""The provider's pages fit a 390-pixel-wide phone screen without sideways
scrolling: Chromium, driven by Playwright at a 390 x 844 viewport in English
and in Chinese, measures ``document.documentElement.scrollWidth`` on the
login page, the account console (with evidence rows, long references and
entities), its other pages and the consent page.

The browser side is tests/e2e/node/small_screen.mjs; requirements as for
test_browser_sso.py. Screenshots go to a temporary folder, or to
``$E2E_SCREENSHOT_DIR/small-screen`` when set."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.test_browser_sso import CHROMIUM, NODE_DIR, require_browser
from tests.integration.test_step_up import level_2_account

SCRIPT = NODE_DIR / "small_screen.mjs"
TIMEOUT = 120


def _long_records(provider, username: str) -> None:
    """Evidence rows with the longest references the schema holds (64
    characters without a break) and an entity with a long name, so that the
    console's tables are as wide as they get."""
    from idp.accounts.models import Agent, LegalEntity, VerificationEvidence
    from idp.accounts.service import find_by_username
    from idp.extensions import db
    from idp.timeutil import utcnow

    with provider.app.app_context():
        account = find_by_username(username)
        now = utcnow()
        db.session.add(VerificationEvidence(
            account_id=account.id, method="social_security_card", source="social_security",
            result="lost", level=0, reference="R" * 64, verified_at=now))
        db.session.add(VerificationEvidence(
            account_id=account.id, method="carrier_three_element", source="carrier",
            result="match", level=3, reference="C" + "0123456789" * 6 + "abc",
            verified_at=now, expires_at=now + timedelta(days=180)))
        entity = LegalEntity(uscc=f"91{uuid.uuid4().hex[:16].upper()}",
                             name="某某省某某市某某区新型智能制造与供应链管理服务有限责任公司"
                                  "第一分公司",
                             reference="E" * 64, verified_at=now,
                             expires_at=now + timedelta(days=365))
        db.session.add(entity)
        db.session.flush()
        db.session.add(Agent(entity_id=entity.id, account_id=account.id,
                             role="legal_representative", reference="A" * 64, verified_at=now))
        db.session.commit()


def test_pages_fit_a_390_pixel_screen(gw, tmp_path):
    node = require_browser()
    provider, gateway = gw
    username, password, _person = level_2_account(provider, gateway)
    _long_records(provider, username)
    client = provider.create_client(
        trusted=False, scope="openid profile email phone realname",
        redirect_uri="https://a-very-long-department-host-name.civil-affairs.example.gov.cn/"
                     "oidc/callback")
    consent_url = (f"{provider.url}/authorize?response_type=code&client_id={client.client_id}"
                   f"&redirect_uri={client.redirect_uri}&scope=openid+profile+email+phone"
                   "+realname&state=s&prompt=consent")
    base = os.environ.get("E2E_SCREENSHOT_DIR")
    screenshots = Path(base) / "small-screen" if base else tmp_path / "screenshots"
    try:
        result = subprocess.run(
            [node, str(SCRIPT)], cwd=NODE_DIR, capture_output=True, text=True,
            timeout=TIMEOUT, check=False,
            env={**os.environ, "PROVIDER": provider.url, "USERNAME": username,
                 "PASSWORD": password, "CONSENT_URL": consent_url,
                 "SCREENSHOT_DIR": str(screenshots), "CHROMIUM": CHROMIUM,
                 "NO_PROXY": "127.0.0.1,localhost"})
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"small_screen.mjs did not finish within {TIMEOUT} s; "
                    f"stdout: {exc.stdout!r}; stderr: {exc.stderr!r}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"small_screen.mjs printed nothing; stderr:\n{result.stderr}"
    out = json.loads(lines[-1])
    print(json.dumps(out, indent=1))  # shown with pytest -rP
    assert result.returncode == 0 and out["ok"] is True, (
        f"stderr:\n{result.stderr}\nsummary:\n{json.dumps(out, indent=1)}")
    names = {(page["name"], page["lang"]) for page in out["pages"]}
    for name in ("login", "account", "entities", "security", "consent", "not-found"):
        assert {(name, "en"), (name, "zh-CN")} <= names, name
    for page in out["pages"]:
        assert page["innerWidth"] == 390 and page["scrollWidth"] <= 390, page

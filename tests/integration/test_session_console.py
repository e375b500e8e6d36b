"""The account console's "where you are logged in" (issue 11) and the
front-channel logout page, through the real pages and forms."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers import Browser, hidden_inputs, redeem
from tests.logout_support import LogoutReceiver

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")


@pytest.fixture
def receiver():
    receiver = LogoutReceiver()
    yield receiver
    receiver.stop()


def _browser(provider, client, username, password, user_agent=CHROME) -> Browser:
    browser = Browser(provider.url)
    browser.session.headers["User-Agent"] = user_agent
    browser.login_for_code(client, username, password)
    return browser


def _forms(page: str) -> dict[str, dict[str, str]]:
    """Each session's "log out" form fields, by sid."""
    forms = {}
    for chunk in page.split('<section class="session"')[1:]:
        fields = hidden_inputs(chunk.split("</section>")[0])
        forms[fields["sid"]] = fields
    return forms


def test_the_console_lists_and_ends_sessions(provider, receiver):
    username, password, _ = provider.create_account()
    client = provider.create_client(backchannel_logout_uri=receiver.url)
    first = _browser(provider, client, username, password)
    second = _browser(provider, client, username, password,
                      user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) "
                                 "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 "
                                 "Mobile/15E148 Safari/604.1")
    page = first.session.get(f"{provider.url}/account/sessions")
    assert page.status_code == 200
    forms = _forms(page.text)
    assert len(forms) == 2
    assert "Chrome 120 on Windows 10" in page.text and "Mobile Safari 17 on iOS 17" in page.text
    assert page.text.count('data-current="yes"') == 1
    assert "127.0.0.0/24" in page.text and "Test client" in page.text
    current = page.text.split('data-current="yes"')[0].rsplit('data-sid="', 1)[1].split('"')[0]
    other = next(sid for sid in forms if sid != current)

    # Log out the other browser: its portal is told, this one goes on.
    done = first.session.post(f"{provider.url}/account/sessions/end", data=forms[other])
    assert done.status_code == 200 and "That session is logged out." in done.text
    [delivery] = receiver.wait(1)
    assert "logout_token" in delivery
    assert second.session.get(f"{provider.url}/account",
                              allow_redirects=False).status_code == 302
    assert len(_forms(first.session.get(f"{provider.url}/account/sessions").text)) == 1

    # Without the CSRF token nothing ends.
    refused = first.session.post(f"{provider.url}/account/sessions/end-all", data={})
    assert refused.status_code == 400
    # Log out everywhere: this browser too, and the portals' tokens.
    fields = hidden_inputs(first.session.get(f"{provider.url}/account/sessions")
                           .text.split('id="end-all"')[1])
    out = first.session.post(f"{provider.url}/account/sessions/end-all", data=fields)
    assert out.status_code == 200 and "You are signed out" in out.text
    receiver.wait(2)
    assert first.session.get(f"{provider.url}/account",
                             allow_redirects=False).status_code == 302


def test_a_sid_of_someone_else_ends_nothing(provider, receiver):
    username, password, _ = provider.create_account()
    client = provider.create_client(backchannel_logout_uri=receiver.url)
    victim = _browser(provider, client, username, password)
    victim_sid = next(iter(_forms(victim.session.get(
        f"{provider.url}/account/sessions").text)))
    other_name, other_password, _ = provider.create_account()
    attacker = _browser(provider, provider.create_client(), other_name, other_password)
    fields = next(iter(_forms(attacker.session.get(
        f"{provider.url}/account/sessions").text).values()))
    fields["sid"] = victim_sid
    answer = attacker.session.post(f"{provider.url}/account/sessions/end", data=fields)
    assert "That session has ended already." in answer.text
    assert victim.session.get(f"{provider.url}/account").status_code == 200
    assert receiver.received == []


def test_the_logout_page_loads_the_front_channel_pages(provider):
    username, password, _ = provider.create_account()
    client = provider.create_client(
        redirect_uri="http://127.0.0.1:9/fc-site/callback",
        frontchannel_logout_uri="http://127.0.0.1:9/fc-site/frontchannel?x=1",
        frontchannel_logout_session_required=True)
    plain = provider.create_client(redirect_uri="http://127.0.0.1:9/plain/callback",
                                   frontchannel_logout_uri="http://127.0.0.1:9/plain/fc")
    browser = Browser(provider.url)
    code = browser.login_for_code(client, username, password)["code"]
    id_token = redeem(provider.url, client, code).json()["id_token"]
    browser.go(browser.authorize_url(plain))
    page = browser.session.get(f"{provider.url}/logout", params={
        "id_token_hint": id_token, "post_logout_redirect_uri": client.post_logout_redirect_uri,
        "state": "s1"})
    assert page.status_code == 200
    marker = 'class="frontchannel" hidden src="'
    # In the order the portals joined the session (the same second: any).
    sources = sorted(part.split('"')[0] for part in page.text.split(marker)[1:])
    assert len(sources) == 2
    framed = urlsplit(sources[0].replace("&amp;", "&"))
    assert framed.path == "/fc-site/frontchannel"
    query = parse_qs(framed.query)
    assert query["x"] == ["1"] and query["iss"] == [provider.url] and query["sid"]
    assert sources[1] == "http://127.0.0.1:9/plain/fc"
    policy = page.headers["Content-Security-Policy"]
    frame_src = next(directive.split()[1:] for directive in policy.split("; ")
                     if directive.startswith("frame-src "))
    assert sorted(frame_src) == ["http://127.0.0.1:9/fc-site/frontchannel",
                                 "http://127.0.0.1:9/plain/fc"]
    assert 'id="continue"' in page.text and client.post_logout_redirect_uri in page.text
    assert "idp_sso" not in browser.session.cookies

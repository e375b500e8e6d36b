"""CAS 3.0 (issue 11) against ``python-cas``, a CAS client nobody here
wrote, through portals served on 127.0.0.1 (tests.cas_support): login,
single sign-on shared with OpenID Connect both ways, ``renew`` and
``gateway``, ticket replay, wrong service and expiry, single logout
reaching CAS and OpenID Connect portals alike, proxy tickets, and the
XML, JSON and CAS 1.0 answers."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest
import requests
from cas import CASClient, CASClientV3

from idp.cas import tickets
from tests.cas_support import start_cas_portal
from tests.helpers import Browser, hidden_inputs
from tests.logout_support import LogoutReceiver

CAS_NS = "{http://www.yale.edu/tp/cas}"


@pytest.fixture
def portal(provider):
    portal = start_cas_portal(provider, scope="openid profile email")
    yield portal
    portal.stop()


def _login_at_portal(provider, browser: requests.Session, portal, username, password,
                     path: str = "/login") -> requests.Response:
    """Open the portal's login; when the provider asks for the password,
    give it. Returns the portal's page at the end."""
    page = browser.get(f"{portal.url}{path}")
    if urlsplit(page.url).path == "/login" and page.url.startswith(provider.url):
        fields = hidden_inputs(page.text)
        fields.update(username=username, password=password)
        page = browser.post(f"{provider.url}/login", data=fields)
    return page


def _ticket_for(provider, browser: requests.Session, service: str, **params) -> str | None:
    """The ticket /cas/login gives ``browser`` for ``service`` (no login
    page: the browser must have a session), or None."""
    answer = browser.get(f"{provider.url}/cas/login", params={"service": service, **params},
                         allow_redirects=False)
    assert answer.status_code in (302, 303), answer.text[:300]
    location = answer.headers["Location"]
    assert location.startswith(service)
    return parse_qs(urlsplit(location).query).get("ticket", [None])[0]


def test_a_cas_portal_logs_in_with_python_cas_and_gets_attributes(provider, portal):
    username, password, _ = provider.create_account(name="Zhao Liu", email="zl@example.test")
    browser = requests.Session()
    page = _login_at_portal(provider, browser, portal, username, password)
    assert page.url == portal.service, page.url
    [validated] = portal.validations
    assert validated["ticket"].startswith("ST-") and len(validated["ticket"]) > 40
    attributes = validated["attributes"]
    assert attributes["name"] == "Zhao Liu" and attributes["email"] == "zl@example.test"
    assert attributes["isFromNewLogin"] == "true"
    assert attributes["longTermAuthenticationRequestTokenUsed"] == "false"
    assert attributes["authenticationMethod"] == "pwd"
    with provider.app.app_context():
        from idp.accounts.service import find_by_username

        assert validated["user"] == find_by_username(username).subject
    assert page.json()["user"] == validated["user"]


def test_cas_and_openid_connect_share_the_sso_session(provider, portal):
    username, password, _ = provider.create_account()
    browser = Browser(provider.url)
    _login_at_portal(provider, browser.session, portal, username, password)
    # CAS first, then an OpenID Connect portal: no password.
    client = provider.create_client()
    answer = browser.go(browser.authorize_url(client))
    assert answer.headers["Location"].startswith(client.redirect_uri)
    # OpenID Connect first, then a CAS portal: no password either.
    other = Browser(provider.url)
    other.login_for_code(client, username, password)
    ticket = _ticket_for(provider, other.session, portal.service)
    user, attributes, _ = CASClientV3(service_url=portal.service,
                                      server_url=f"{provider.url}/cas/").verify_ticket(ticket)
    assert user is not None and attributes["isFromNewLogin"] == "false"


def _verify(provider, service: str, ticket: str, suffix: str = "p3/serviceValidate",
            **params) -> ElementTree.Element:
    answer = requests.get(f"{provider.url}/cas/{suffix}",
                          params={"service": service, "ticket": ticket, **params})
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    return ElementTree.fromstring(answer.text)


def _failure(root: ElementTree.Element) -> str | None:
    failure = root.find(f"{CAS_NS}authenticationFailure")
    return failure.get("code") if failure is not None else None


def test_a_ticket_is_single_use_bound_to_its_service_and_short_lived(provider, portal,
                                                                    monkeypatch):
    username, password, _ = provider.create_account()
    browser = requests.Session()
    _login_at_portal(provider, browser, portal, username, password)
    used = portal.validations[0]["ticket"]
    assert _failure(_verify(provider, portal.service, used)) == "INVALID_TICKET"
    # Another service's ticket, validated by this one: refused, and used up.
    other = start_cas_portal(provider)
    try:
        ticket = _ticket_for(provider, browser, other.service)
        assert _failure(_verify(provider, portal.service, ticket)) == "INVALID_SERVICE"
        assert _failure(_verify(provider, other.service, ticket)) == "INVALID_TICKET"
    finally:
        other.stop()
    # A failed validation revokes nothing else: the session still gives tickets.
    fresh = _ticket_for(provider, browser, portal.service)
    assert _failure(_verify(provider, portal.service, fresh)) is None
    monkeypatch.setattr(tickets, "SERVICE_TICKET_TTL", 1)
    late = _ticket_for(provider, browser, portal.service)
    time.sleep(1.2)
    assert _failure(_verify(provider, portal.service, late)) == "INVALID_TICKET"
    for bad in ({"ticket": ""}, {"service": ""}):
        params = {"service": portal.service, "ticket": "ST-x", **bad}
        root = ElementTree.fromstring(requests.get(f"{provider.url}/cas/serviceValidate",
                                                   params=params).text)
        assert _failure(root) == "INVALID_REQUEST"
    assert _failure(_verify(provider, portal.service, "x" * 5000)) == "INVALID_TICKET"


def test_renew_asks_for_the_password_and_says_so(provider, portal):
    username, password, _ = provider.create_account()
    browser = requests.Session()
    _login_at_portal(provider, browser, portal, username, password)
    from_sso = _ticket_for(provider, browser, portal.service)
    assert _failure(_verify(provider, portal.service, from_sso, renew="true")) \
        == "INVALID_TICKET"
    page = browser.get(f"{provider.url}/cas/login",
                       params={"service": portal.service, "renew": "true"})
    assert urlsplit(page.url).path == "/login" and 'name="password"' in page.text
    fields = hidden_inputs(page.text)
    fields.update(username=username, password=password)
    back = browser.post(f"{provider.url}/login", data=fields, allow_redirects=False)
    while back.headers["Location"].startswith(provider.url) or \
            back.headers["Location"].startswith("/"):
        back = browser.get(requests.compat.urljoin(provider.url, back.headers["Location"]),
                           allow_redirects=False)
    ticket = parse_qs(urlsplit(back.headers["Location"]).query)["ticket"][0]
    root = _verify(provider, portal.service, ticket, renew="true")
    attributes = root.find(f"{CAS_NS}authenticationSuccess/{CAS_NS}attributes")
    assert attributes.find(f"{CAS_NS}isFromNewLogin").text == "true"


def test_gateway_never_shows_a_login_page(provider, portal):
    answer = requests.get(f"{provider.url}/cas/login",
                          params={"service": portal.service, "gateway": "true"},
                          allow_redirects=False)
    assert answer.status_code in (302, 303) and answer.headers["Location"] == portal.service


def test_an_unregistered_service_gets_a_page_not_a_redirect(provider, portal):
    for service in ("https://evil.example.test/", portal.service.rstrip("/"),
                    portal.service + "#frag", portal.service.replace("http:", "https:"),
                    portal.service + "\\evil"):
        answer = requests.get(f"{provider.url}/cas/login", params={"service": service},
                              allow_redirects=False)
        assert answer.status_code == 400 and "Location" not in answer.headers, service


def test_a_prefix_registration_takes_paths_below_it_only(provider):
    prefix = start_cas_portal(provider)
    try:
        username, password, _ = provider.create_account()
        browser = requests.Session()
        _login_at_portal(provider, browser, prefix, username, password)
        deep = prefix.service + "app/page?x=1"
        ticket = _ticket_for(provider, browser, deep)
        assert _failure(_verify(provider, deep, ticket)) is None
        for sneaky in (prefix.service + "app/../../other", prefix.service + "%2e%2e/x"):
            answer = requests.get(f"{provider.url}/cas/login", params={"service": sneaky},
                                  allow_redirects=False)
            assert answer.status_code == 400, sneaky
    finally:
        prefix.stop()


def test_single_logout_reaches_cas_and_openid_connect_portals(provider, portal):
    receiver = LogoutReceiver()
    try:
        username, password, _ = provider.create_account()
        browser = Browser(provider.url)
        _login_at_portal(provider, browser.session, portal, username, password)
        assert browser.session.get(portal.service).json()["user"] is not None
        oidc = provider.create_client(backchannel_logout_uri=receiver.url)
        browser.go(browser.authorize_url(oidc))
        # Log out at the CAS portal's provider logout: confirm, then both are told.
        page = browser.session.get(f"{provider.url}/cas/logout",
                                   params={"service": portal.service})
        fields = hidden_inputs(page.text)
        assert fields["service"] == portal.service
        done = browser.session.post(f"{provider.url}/cas/logout",
                                    data={**fields, "confirm": "yes"}, allow_redirects=False)
        assert done.status_code in (302, 303) and done.headers["Location"] == portal.service
        receiver.wait(1)
        deadline = time.monotonic() + 15
        while not portal.logout_requests:
            assert time.monotonic() < deadline, "the CAS portal was never told"
            time.sleep(0.1)
        [message] = portal.logout_requests
        assert CASClientV3.verify_logout_request(message, portal.validations[0]["ticket"])
        assert browser.session.get(portal.service).json()["user"] is None
    finally:
        receiver.stop()


def test_an_oidc_logout_reaches_the_cas_portal(provider, portal):
    username, password, _ = provider.create_account()
    browser = Browser(provider.url)
    _login_at_portal(provider, browser.session, portal, username, password)
    client = provider.create_client()
    from tests.helpers import redeem

    code = browser.login_for_code(client, username, password)["code"]
    id_token = redeem(provider.url, client, code).json()["id_token"]
    browser.session.get(f"{provider.url}/logout", params={
        "id_token_hint": id_token, "post_logout_redirect_uri": client.post_logout_redirect_uri},
        allow_redirects=False)
    deadline = time.monotonic() + 15
    while not portal.logout_requests:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert browser.session.get(portal.service).json()["user"] is None


def test_json_cas1_and_cas2_answers(provider, portal):
    username, password, _ = provider.create_account(name="Sun Qi")
    browser = requests.Session()
    _login_at_portal(provider, browser, portal, username, password)
    ticket = _ticket_for(provider, browser, portal.service)
    answer = requests.get(f"{provider.url}/cas/p3/serviceValidate",
                          params={"service": portal.service, "ticket": ticket,
                                  "format": "JSON"}).json()
    success = answer["serviceResponse"]["authenticationSuccess"]
    assert success["attributes"]["name"] == ["Sun Qi"] and success["user"]
    failure = requests.get(f"{provider.url}/cas/p3/serviceValidate",
                           params={"service": portal.service, "ticket": ticket,
                                   "format": "JSON"}).json()
    assert failure["serviceResponse"]["authenticationFailure"]["code"] == "INVALID_TICKET"
    cas1 = requests.get(f"{provider.url}/cas/validate", params={
        "service": portal.service, "ticket": _ticket_for(provider, browser, portal.service)})
    assert cas1.text == f"yes\n{success['user']}\n"
    assert requests.get(f"{provider.url}/cas/validate", params={
        "service": portal.service, "ticket": "ST-nothing"}).text == "no\n\n"
    v2 = CASClient(version=2, service_url=portal.service, server_url=f"{provider.url}/cas/")
    user, _attributes, _ = v2.verify_ticket(_ticket_for(provider, browser, portal.service))
    assert user == success["user"]


def _pgt_callback() -> tuple[ThreadingHTTPServer, str, list[dict]]:
    """A service's proxy callback (pgtUrl) on 127.0.0.1 that answers 200
    and records the query of each call: ``(server, its URL, calls)``."""
    calls: list[dict] = []

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            calls.append({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/pgt", calls


def _granted_pgt(provider, front, pgt_url: str, received: list[dict]) -> str:
    """A new account's login at ``front``, whose ticket is validated with
    ``pgt_url``: the proxy-granting ticket the callback received."""
    username, password, _ = provider.create_account()
    browser = requests.Session()
    _login_at_portal(provider, browser, front, username, password)
    _verify(provider, front.service, _ticket_for(provider, browser, front.service),
            pgtUrl=pgt_url)
    return received[-1]["pgtId"]


def test_proxy_tickets(provider):
    server, pgt_url, proxy_answers = _pgt_callback()
    front = start_cas_portal(provider, cas_proxy_callbacks=[pgt_url])
    back = start_cas_portal(provider)
    try:
        username, password, _ = provider.create_account()
        browser = requests.Session()
        _login_at_portal(provider, browser, front, username, password)
        ticket = _ticket_for(provider, browser, front.service)
        root = _verify(provider, front.service, ticket, pgtUrl=pgt_url)
        iou = root.find(f"{CAS_NS}authenticationSuccess/{CAS_NS}proxyGrantingTicket").text
        [delivered] = proxy_answers
        assert delivered["pgtIou"] == iou and delivered["pgtId"].startswith("PGT-")
        client = CASClientV3(service_url=back.service, server_url=f"{provider.url}/cas/")
        proxy = client.get_proxy_ticket(delivered["pgtId"])
        assert proxy.startswith("PT-")
        # A proxy ticket is not a service ticket...
        assert _failure(_verify(provider, back.service, proxy)) == "INVALID_TICKET_SPEC"
        # ...it passes /proxyValidate, naming the proxy.
        proxy = client.get_proxy_ticket(delivered["pgtId"])
        root = _verify(provider, back.service, proxy, suffix="p3/proxyValidate")
        success = root.find(f"{CAS_NS}authenticationSuccess")
        assert [p.text for p in success.find(f"{CAS_NS}proxies")] == [pgt_url]
        # An unregistered callback gets nothing.
        ticket = _ticket_for(provider, browser, front.service)
        root = _verify(provider, front.service, ticket, pgtUrl=pgt_url + "/other")
        assert root.find(f"{CAS_NS}authenticationSuccess/{CAS_NS}proxyGrantingTicket") is None
        assert len(proxy_answers) == 1
        # The PGT ends with the session.
        browser.post(f"{provider.url}/cas/logout", data={
            **hidden_inputs(browser.get(f"{provider.url}/cas/logout").text), "confirm": "yes"})
        answer = requests.get(f"{provider.url}/cas/proxy", params={
            "pgt": delivered["pgtId"], "targetService": back.service})
        failure = ElementTree.fromstring(answer.text).find(f"{CAS_NS}proxyFailure")
        assert failure.get("code") == "INVALID_TICKET"
    finally:
        server.shutdown()
        server.server_close()
        front.stop()
        back.stop()


def test_an_untrusted_service_asks_for_consent(provider):
    portal = start_cas_portal(provider, trusted=False)
    try:
        username, password, _ = provider.create_account()
        browser = requests.Session()
        page = _login_at_portal(provider, browser, portal, username, password)
        assert urlsplit(page.url).path == "/consent", page.url
        fields = hidden_inputs(page.text)
        fields["decision"] = "approve"
        done = browser.post(f"{provider.url}/consent", data=fields)
        assert done.url == portal.service and done.json()["user"]
    finally:
        portal.stop()


def test_a_department_service_sees_the_old_login_name(provider):
    from idp.accounts import links
    from idp.accounts.service import find_by_username

    portal = start_cas_portal(provider, department="HX")
    try:
        username, password, _ = provider.create_account()
        with provider.app.app_context():
            account = find_by_username(username)
            links.link(provider.runtime, account, "legacy", "HX", "u1001")
            links.link(provider.runtime, account, "alias", "HX", "old_name")
        browser = requests.Session()
        _login_at_portal(provider, browser, portal, username, password)
        [validated] = portal.validations
        assert validated["user"] == "old_name"
        assert validated["attributes"]["legacy_ids"] == "u1001"
    finally:
        portal.stop()


def test_cas_services_are_registered_by_the_cli(provider):
    from click.testing import CliRunner

    from idp.cli import main

    env = provider.cli_env()
    result = CliRunner().invoke(main, ["clients", "create", "--name", "Old portal",
                                       "--cas-service", "https://old.example.test/app/",
                                       "--json"], env=env)
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["cas_services"] == ["https://old.example.test/app/"]
    assert created["token_endpoint_auth_method"] == "none" and not created.get("client_secret")
    listed = CliRunner().invoke(main, ["clients", "list"], env=env)
    assert (f"{created['client_id']}\tOld portal\tcas\thttps://old.example.test/app/"
            in listed.output)
    refused = CliRunner().invoke(main, ["clients", "create", "--name", "Bad",
                                        "--cas-service", "https://x.example.test/*"], env=env)
    assert refused.exit_code != 0 and "wildcards are not allowed" in refused.output


def test_a_services_minimum_level_steps_the_user_up(gw):
    provider, _gateway = gw
    portal = start_cas_portal(provider, min_acr="L2")
    try:
        username, password, _ = provider.create_account()
        browser = requests.Session()
        page = _login_at_portal(provider, browser, portal, username, password)
        # A password alone is level 1: the login goes on to the step-up page.
        assert urlsplit(page.url).path == "/login/step-up", page.url
        assert portal.validations == []
        # Under gateway there is no page: back to the service without a ticket.
        answer = browser.get(f"{provider.url}/cas/login",
                             params={"service": portal.service, "gateway": "true"},
                             allow_redirects=False)
        assert answer.headers["Location"] == portal.service
    finally:
        portal.stop()


def test_a_level_no_step_up_can_reach_is_a_page_not_a_ticket(provider):
    # Without the registries, level 2 cannot be reached at all.
    portal = start_cas_portal(provider, min_acr="L2")
    try:
        username, password, _ = provider.create_account()
        browser = requests.Session()
        page = _login_at_portal(provider, browser, portal, username, password)
        assert page.status_code == 400 and "unmet_authentication_requirements" in page.text
        assert portal.validations == []
    finally:
        portal.stop()


def test_control_characters_in_a_service_url_are_a_page_not_an_error(provider, portal):
    username, password, _ = provider.create_account()
    browser = requests.Session()
    _login_at_portal(provider, browser, portal, username, password)
    for tail in ("x%0Ay", "x%0D%0ASet-Cookie:%20a=b", "x%09y", "x%20y", "x%7F"):
        for path in ("/cas/login", "/cas/logout"):
            answer = browser.get(f"{provider.url}{path}?service={portal.service}{tail}",
                                 allow_redirects=False)
            assert answer.status_code in (200, 400), (path, tail, answer.status_code)
            assert "Location" not in answer.headers


def test_a_ticket_of_an_ended_session_is_refused(provider, portal):
    username, password, _ = provider.create_account()
    browser = requests.Session()
    _login_at_portal(provider, browser, portal, username, password)
    ticket = _ticket_for(provider, browser, portal.service)
    browser.post(f"{provider.url}/cas/logout", data={
        **hidden_inputs(browser.get(f"{provider.url}/cas/logout").text), "confirm": "yes"})
    assert _failure(_verify(provider, portal.service, ticket)) == "INVALID_TICKET"


def test_a_name_xml_cannot_carry_still_gives_a_well_formed_answer(provider, portal):
    username, password, _ = provider.create_account(name="Evil\x0bName\x01\ufffe")
    browser = requests.Session()
    page = _login_at_portal(provider, browser, portal, username, password)
    assert page.url == portal.service
    assert portal.validations[0]["attributes"]["name"] == "Evil\ufffdName\ufffd\ufffd"


def test_a_proxy_ticket_obeys_the_targets_consent_and_level(provider):
    server, pgt_url, received = _pgt_callback()
    front = start_cas_portal(provider, cas_proxy_callbacks=[pgt_url])
    untrusted = start_cas_portal(provider, trusted=False)
    demanding = start_cas_portal(provider, min_acr="L3")
    try:
        pgt = _granted_pgt(provider, front, pgt_url, received)
        for target, reason in ((untrusted, "has not allowed"), (demanding, "level")):
            answer = requests.get(f"{provider.url}/cas/proxy",
                                  params={"pgt": pgt, "targetService": target.service})
            failure = ElementTree.fromstring(answer.text).find(f"{CAS_NS}proxyFailure")
            assert failure.get("code") == "UNAUTHORIZED_SERVICE" and reason in failure.text
    finally:
        server.shutdown()
        server.server_close()
        for portal in (front, untrusted, demanding):
            portal.stop()


def test_single_logout_goes_to_the_registration_not_a_users_path(provider):
    receiver = LogoutReceiver()
    try:
        service = receiver.url.rsplit("/", 1)[0] + "/"
        provider.create_client(cas=service)
        username, password, _ = provider.create_account()
        browser = Browser(provider.url)
        browser.login_for_code(provider.create_client(), username, password)
        chosen = service + "admin/delete?id=42"
        ticket = _ticket_for(provider, browser.session, chosen)
        assert _failure(_verify(provider, chosen, ticket)) is None
        browser.session.post(f"{provider.url}/cas/logout", data={
            **hidden_inputs(browser.session.get(f"{provider.url}/cas/logout").text),
            "confirm": "yes"})
        [message] = receiver.wait(1)
        assert CASClientV3.verify_logout_request(message["logoutRequest"], ticket)
        assert receiver.paths == ["/"]
    finally:
        receiver.stop()


def test_a_pgt_dies_with_its_service_and_its_callback(provider):
    from dataclasses import replace

    from idp.admin.clients import remove_client
    from idp.clients.service import find_client as find
    from idp.clients.service import registered_metadata, update_client

    server, pgt_url, received = _pgt_callback()
    front = start_cas_portal(provider, cas_proxy_callbacks=[pgt_url])
    back = start_cas_portal(provider)
    try:
        pgt = _granted_pgt(provider, front, pgt_url, received)

        def proxy_code():
            answer = requests.get(f"{provider.url}/cas/proxy",
                                  params={"pgt": pgt, "targetService": back.service})
            failure = ElementTree.fromstring(answer.text).find(f"{CAS_NS}proxyFailure")
            return failure.get("code") if failure is not None else None

        assert proxy_code() is None
        with provider.app.app_context():
            row = find(front.client_id)
            update_client(provider.runtime, front.client_id,
                          replace(registered_metadata(row), cas_proxy_callbacks=()))
            from idp.extensions import db

            db.session.commit()
        assert proxy_code() == "INVALID_TICKET"
        with provider.app.app_context():
            remove_client(provider.runtime, front.client_id, "test")
        assert proxy_code() == "INVALID_TICKET"
    finally:
        server.shutdown()
        server.server_close()
        front.stop()
        back.stop()


def test_a_cas_service_url_belongs_to_one_service(provider):
    from idp.clients.metadata import ClientError

    portal = start_cas_portal(provider)
    try:
        for url in (portal.service, portal.service + "reports/", portal.service + "exact"):
            with pytest.raises(ClientError, match="overlaps"):
                provider.create_client(cas=url)
    finally:
        portal.stop()


def test_a_cas2_logout_names_its_return_page_url(provider, portal):
    username, password, _ = provider.create_account()
    browser = requests.Session()
    _login_at_portal(provider, browser, portal, username, password)
    page = browser.get(f"{provider.url}/cas/logout", params={"url": portal.service})
    fields = hidden_inputs(page.text)
    assert fields["service"] == portal.service
    done = browser.post(f"{provider.url}/cas/logout", data={**fields, "confirm": "yes"},
                        allow_redirects=False)
    assert done.headers["Location"] == portal.service

"""Changing a registered client (issue 8): ``update_client``,
``rotate_secret`` and removing a client, as services and as ``idp clients
update|rotate-secret|delete|show`` against a running two-worker ``idp
serve``, where each change applies on every worker at its next request."""

from __future__ import annotations

import http.client
import json
import os
import time
import uuid
from base64 import b64encode
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from idp.cli import main
from tests.helpers import Browser, pkce_pair, redeem
from tests.helpers import TestClient as Registered
from tests.serve_support import Served, running_serve

# --- the services, on the in-process provider ------------------------------------


def _metadata(provider, client_id: str):
    from idp.clients.service import find_client, registered_metadata

    return registered_metadata(find_client(client_id))


def _update(provider, client_id: str, **changes) -> None:
    """``update_client`` with ``changes`` to what is registered, committed."""
    from dataclasses import replace

    from idp.clients.service import update_client

    with provider.app.app_context():
        update_client(provider.runtime, client_id,
                      replace(_metadata(provider, client_id), **changes))


def _tokens(provider, client: Registered, username: str, password: str, scope: str) -> dict:
    code = Browser(provider.url).login_for_code(client, username, password, scope=scope)["code"]
    answer = redeem(provider.url, client, code)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _refresh(provider, client: Registered, refresh_token: str, **extra) -> requests.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    if client.auth is None:
        data["client_id"] = client.client_id
    return requests.post(f"{provider.url}/token", auth=client.auth, data=data)


def _userinfo(provider, access_token: str) -> requests.Response:
    return requests.get(f"{provider.url}/userinfo",
                        headers={"Authorization": f"Bearer {access_token}"})


def _introspect(provider, client: Registered, token: str) -> dict:
    answer = requests.post(f"{provider.url}/introspect", auth=client.auth, data={"token": token})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _cc_token(provider, client: Registered) -> str:
    answer = requests.post(f"{provider.url}/token", auth=client.auth,
                           data={"grant_type": "client_credentials"})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def test_removing_a_client_revokes_its_grants_and_consents(provider):
    from idp.admin.clients import remove_client
    from idp.audit.models import AuditEvent
    from idp.authorizations.models import Consent, Grant, RefreshToken
    from idp.extensions import db

    username, password, _ = provider.create_account()
    doomed, kept = provider.create_client(trusted=False), provider.create_client(trusted=False)
    tokens = {}
    for client in (doomed, kept):
        params = Browser(provider.url).login_for_code(client, username=username,
                                                      password=password,
                                                      scope="openid offline_access")
        tokens[client.client_id] = redeem(provider.url, client, params["code"]).json()
    with provider.app.app_context():
        removed = remove_client(provider.runtime, doomed.client_id, "operator")
        db.session.commit()
        assert (removed.grants, removed.consents) == (1, 1)
        grants = db.session.scalars(select(Grant).where(
            Grant.client_id.in_([doomed.client_id, kept.client_id]))).all()
        assert {g.client_id: g.revoked_at is not None for g in grants} == {
            doomed.client_id: True, kept.client_id: False}
        live = db.session.scalars(select(RefreshToken.grant_id).where(
            RefreshToken.revoked_at.is_(None))).all()
        assert {g.id for g in grants if g.client_id == doomed.client_id}.isdisjoint(live)
        assert db.session.scalars(select(Consent.client_id).where(
            Consent.client_id.in_([doomed.client_id, kept.client_id]))).all() == [
            kept.client_id]
        events = {e.event: e.detail for e in db.session.scalars(select(AuditEvent).where(
            AuditEvent.client_id == doomed.client_id))}
        assert events["client.deleted"]["actor"] == "operator"
        assert events["client.grants_revoked"] == {"reason": "client_deleted", "grants": 1,
                                                   "consents": 1}
    for client_id, status in ((doomed.client_id, 401), (kept.client_id, 200)):
        response = requests.get(f"{provider.url}/userinfo", headers={
            "Authorization": f"Bearer {tokens[client_id]['access_token']}"})
        assert response.status_code == status


def test_an_update_keeps_what_the_users_know(provider):
    """client_id, subject type and pairwise sector stay (their sub would
    change); a move within the sector is allowed and fetches nothing when
    the redirect URIs stay."""
    from dataclasses import replace

    from idp.clients.metadata import ClientError
    from idp.clients.service import update_client
    from idp.extensions import db

    client = provider.create_client(subject_type="pairwise",
                                    redirect_uri="https://a.example.test/cb")

    def no_fetch(uri):
        raise AssertionError("fetched")

    with provider.app.app_context():
        rt, current = provider.runtime, _metadata(provider, client.client_id)
        for change, message in (
                ({"client_id": "other"}, "client_id cannot change"),
                ({"subject_type": "public"}, "subject type cannot change from pairwise"),
                ({"redirect_uris": ["https://b.example.test/cb"]},
                 "from sector a.example.test to sector b.example.test"),
                ({"redirect_uris": ["http://127.0.0.1/cb"]}, "to a sector of its own"),
                ({"scope": "openid nope"}, "scope 'nope' is not supported")):
            with pytest.raises(ClientError, match=message):
                update_client(rt, client.client_id, replace(current, **change), fetch=no_fetch)
        row, secret = update_client(rt, client.client_id, replace(
            current, client_name="Renamed", redirect_uris=["https://a.example.test/other"]),
            fetch=no_fetch)
        assert (row.name, row.redirect_uris, row.sector_identifier, secret) == (
            "Renamed", ["https://a.example.test/other"], "a.example.test", None)
        db.session.commit()
        with pytest.raises(ClientError, match="no client is registered as 'missing'"):
            update_client(rt, "missing", current)


def test_an_update_of_the_auth_method_gives_or_takes_the_secret(provider):
    from dataclasses import replace

    from idp.clients.service import rotate_secret, update_client
    from idp.extensions import db

    client = provider.create_client(grant_types=["client_credentials"])
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}
    with provider.app.app_context():
        rt = provider.runtime
        rotate_secret(rt, client.client_id, 600)
        row, secret = update_client(rt, client.client_id, replace(
            _metadata(provider, client.client_id), token_endpoint_auth_method="private_key_jwt",
            jwks=jwks))
        assert secret is None
        assert (row.secret_hash, row.previous_secret_hash, row.previous_secret_expires_at) == (
            None, None, None)
        row, secret = update_client(rt, client.client_id, replace(
            _metadata(provider, client.client_id), token_endpoint_auth_method="client_secret_post",
            jwks=None))
        assert secret and row.secret_hash
        db.session.commit()
    answer = requests.post(f"{provider.url}/token", data={
        "grant_type": "client_credentials", "client_id": client.client_id,
        "client_secret": secret})
    assert answer.status_code == 200, answer.text
    assert requests.post(f"{provider.url}/token", data={"grant_type": "client_credentials"},
                         auth=client.auth).status_code == 401


def test_rotation_rules(provider):
    from idp.clients.metadata import ClientError
    from idp.clients.service import rotate_secret

    public = provider.create_client(public=True)
    with provider.app.app_context():
        with pytest.raises(ClientError, match="authenticates with none: it has no secret"):
            rotate_secret(provider.runtime, public.client_id, 0)
        with pytest.raises(ClientError, match="grace period must be 0 to"):
            rotate_secret(provider.runtime, public.client_id, -1)
        with pytest.raises(ClientError, match="no client is registered"):
            rotate_secret(provider.runtime, "missing", 0)


def test_a_scope_removed_from_the_registration_stops_at_every_old_grant(provider):
    """What a client receives is bounded by its registration as it is now:
    once ``email`` and ``phone`` leave it, a grant made before releases
    neither (userinfo with the access token issued before, refresh, and what
    introspection reports), though it still names them; a refresh never
    gives more than was granted; without ``offline_access`` the refresh
    tokens stop."""
    from idp.accounts.service import find_by_username, set_phone_number

    username, password, _ = provider.create_account(email="someone@example.test")
    with provider.app.app_context():
        set_phone_number(provider.runtime, find_by_username(username), "+8613912345678",
                         verified=True)
    client = provider.create_client(scope="openid email phone offline_access")
    tokens = _tokens(provider, client, username, password,
                     scope="openid email phone offline_access")
    assert tokens["scope"] == "openid email phone offline_access"
    assert _userinfo(provider, tokens["access_token"]).json()["email"] == "someone@example.test"
    _update(provider, client.client_id, scope="openid offline_access")
    released = ("email", "email_verified", "phone_number", "phone_number_verified")

    def withheld(access_token: str) -> bool:
        answer = _userinfo(provider, access_token)
        assert answer.status_code == 200, answer.text
        return "sub" in answer.json() and not set(released) & set(answer.json())

    assert withheld(tokens["access_token"])
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert _introspect(provider, client, token)["scope"] == "openid offline_access"
    refreshed = _refresh(provider, client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "openid offline_access"
    assert withheld(refreshed.json()["access_token"])
    narrower = _refresh(provider, client, refreshed.json()["refresh_token"], scope="openid email")
    assert narrower.status_code == 200, narrower.text
    assert narrower.json()["scope"] == "openid"
    _update(provider, client.client_id, scope="openid email phone")
    assert _introspect(provider, client, narrower.json()["refresh_token"]) == {"active": False}
    stopped = _refresh(provider, client, narrower.json()["refresh_token"])
    assert stopped.status_code == 400 and stopped.json()["error"] == "invalid_grant"


def test_a_client_registered_again_does_not_revive_the_old_registrations_tokens(provider):
    """``idp clients delete X`` then ``idp clients create --client-id X``:
    an access token issued before the current registration is not active,
    at introspection (to a resource server or the new registration),
    userinfo or revocation; the new registration's tokens are, from its
    first second."""
    from idp.admin.clients import remove_client
    from idp.audit.models import AuditEvent
    from idp.clients.service import create_client
    from idp.extensions import db

    username, password, _ = provider.create_account()
    client = provider.create_client(
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        scope="openid profile offline_access")
    api = provider.create_client(resource_server=True, grant_types=["client_credentials"])
    user_tokens = _tokens(provider, client, username, password, scope="openid offline_access")
    old = _cc_token(provider, client)
    assert _introspect(provider, api, old)["active"] is True
    with provider.app.app_context():
        metadata = _metadata(provider, client.client_id)
        remove_client(provider.runtime, client.client_id, "operator")
    time.sleep(1)  # the tokens of the old registration are from an earlier second
    with provider.app.app_context():
        _, secret = create_client(provider.runtime, metadata)
    again = Registered(client.client_id, secret, client.redirect_uri)
    new = _cc_token(provider, again)
    for who in (api, again):
        assert _introspect(provider, who, old) == {"active": False}
        assert _introspect(provider, who, user_tokens["access_token"]) == {"active": False}
    assert _introspect(provider, api, new)["active"] is True
    assert _userinfo(provider, user_tokens["access_token"]).status_code == 401
    revoked = requests.post(f"{provider.url}/revoke", auth=again.auth, data={"token": old})
    assert revoked.status_code == 200
    with provider.app.app_context():
        assert db.session.scalars(select(AuditEvent).where(
            AuditEvent.client_id == client.client_id,
            AuditEvent.event == "token.revoked")).all() == []


def test_a_confidential_client_made_public_loses_its_grants(provider):
    """Refresh tokens of a confidential client are bound to its
    authentication (RFC 9700 §4.14.2): made public, the client could use
    them with its client_id alone, so its live grants are revoked (refresh
    tokens and the access tokens naming them), audited; consents stay.
    Another change revokes nothing."""
    from dataclasses import replace

    from idp.admin.clients import change_client
    from idp.audit.models import AuditEvent
    from idp.authorizations.models import Consent
    from idp.extensions import db

    username, password, _ = provider.create_account()
    client = provider.create_client(trusted=False)
    tokens = _tokens(provider, client, username, password, scope="openid offline_access")
    with provider.app.app_context():
        changed = change_client(provider.runtime, client.client_id, replace(
            _metadata(provider, client.client_id), client_name="Renamed"), "operator")
        assert (changed.made_public, changed.grants, changed.secret) == (False, 0, None)
    refreshed = _refresh(provider, client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    tokens = refreshed.json()
    with provider.app.app_context():
        changed = change_client(provider.runtime, client.client_id, replace(
            _metadata(provider, client.client_id), token_endpoint_auth_method="none"),
            "operator")
        assert (changed.made_public, changed.grants, changed.secret) == (True, 1, None)
    public = Registered(client.client_id, None, client.redirect_uri)
    stopped = _refresh(provider, public, tokens["refresh_token"])
    assert stopped.status_code == 400 and stopped.json()["error"] == "invalid_grant"
    assert _userinfo(provider, tokens["access_token"]).status_code == 401
    with provider.app.app_context():
        assert db.session.scalars(select(Consent.client_id).where(
            Consent.client_id == client.client_id)).all() == [client.client_id]
        events = {e.event: e.detail for e in db.session.scalars(select(AuditEvent).where(
            AuditEvent.client_id == client.client_id))}
        assert events["client.grants_revoked"] == {"reason": "client_made_public",
                                                   "grants": 1, "consents": 0}


def test_a_random_client_id_never_begins_with_a_dash(provider, monkeypatch):
    """A command line takes ``-A...`` for an option (``idp clients show ID``)."""
    from idp.clients import service
    from idp.clients.metadata import ClientMetadata

    ids = iter(["-dash", "plain"])
    real = service.random_token
    monkeypatch.setattr(service, "random_token",
                        lambda nbytes=32: next(ids) if nbytes == 16 else real(nbytes))
    with provider.app.app_context():
        row, _ = service.create_client(provider.runtime, ClientMetadata(
            "Dashless", grant_types=["client_credentials"]))
        assert row.client_id == "plain"


def test_a_store_outage_leaves_cached_clients_to_their_lifetime(provider, caplog):
    """Without the store a process cannot learn of other processes'
    changes: lookups go on (entries live their 30 s), a committed change
    stays committed, and both are logged."""
    from idp.clients.cache import ClientCache
    from idp.extensions import db
    from idp.store import StoreError

    class Down:
        def get(self, key):
            raise StoreError("store down")

        def put(self, key, value, ttl):
            raise StoreError("store down")

    client = provider.create_client()
    with provider.app.app_context():
        cache = ClientCache(provider.runtime.token_hmac_key, Down())
        assert cache.get(client.client_id).client_id == client.client_id
        cache.changed(db.session, client.client_id)
        db.session.commit()
        assert cache.get(client.client_id).client_id == client.client_id
    assert "generation cannot be read" in caplog.text
    assert "committed but the store could not be told" in caplog.text


@pytest.mark.skipif(not os.environ.get("IDP_TEST_REDIS_URL"),
                    reason="the generation is pushed only by the Redis store")
def test_with_redis_the_generation_is_pushed_and_read_while_the_push_is_down(provider):
    """Another process's cache (its own store) stops reading the generation
    once its subscription is live; a change returns only when that cache
    has applied it; with the subscription down it reads on every lookup."""
    import threading

    import redis

    from idp.clients.cache import ClientCache
    from idp.store.redis import RedisStore

    class Counted(RedisStore):
        reads = 0

        def get(self, key):
            if threading.current_thread() is threading.main_thread():
                self.reads += 1
            return super().get(key)

    def until(condition) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    url = os.environ["IDP_TEST_REDIS_URL"]
    store = Counted(url, provider.runtime.store._prefix)
    client = provider.create_client()
    with provider.app.app_context():
        cache = ClientCache(provider.runtime.token_hmac_key, store)
        try:
            assert cache.get(client.client_id).redirect_uris
            assert store.reads == 1  # the subscription is not live yet
            until(cache._is_pushed)
            for _ in range(5):
                cache.get(client.client_id)
            assert store.reads == 1
            _update(provider, client.client_id, redirect_uris=["https://rp.example.test/new"])
            # No wait: the update came back after this process applied it.
            assert cache.get(client.client_id).redirect_uris == ("https://rp.example.test/new",)
            with redis.Redis.from_url(url) as admin:
                admin.client_kill_filter(_type="pubsub")
            until(lambda: not cache._is_pushed())
            reads = store.reads
            cache.get(client.client_id)
            assert store.reads == reads + 1
            until(cache._is_pushed)
        finally:
            store.close()


# --- the commands, against ``idp serve`` with two workers --------------------------

WORKERS = 2


@pytest.fixture(scope="module")
def served(tmp_path_factory, database_url) -> Iterator[Served]:
    """``idp serve --workers 2``; its ``env`` runs the commands on the same instance."""
    with running_serve(tmp_path_factory.mktemp("clients-serve"), database_url,
                       workers=WORKERS) as served:
        yield served


def _holder(workers: set[int], server_port: int, client_port: int) -> int:
    """The worker holding the server side of the connection from ``client_port``."""
    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if (int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)) == (
                    server_port, client_port):
                inode = fields[9]
    assert inode is not None, "the connection is not open on the server"
    for pid in workers:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


Answer = tuple[int, http.client.HTTPMessage, bytes]


def _on_every_worker(served: Served, method: str, path: str, body: dict | None = None,
                     headers: dict | None = None, times: int = 3) -> dict[int, list[Answer]]:
    """Send the request on new connections until every worker answered it
    ``times`` times; the answers by worker pid."""
    port, workers = served.port, served.workers()
    assert len(workers) == WORKERS
    answers: dict[int, list[Answer]] = {pid: [] for pid in workers}
    data = urlencode(body) if body is not None else None
    headers = dict(headers or {})
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    for _ in range(400):
        if all(len(seen) >= times for seen in answers.values()):
            return answers
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            content = response.read()
            # Kept alive, the connection is still open in the worker that answered.
            pid = _holder(workers, port, conn.sock.getsockname()[1])
            answers[pid].append((response.status, response.headers, content))
        finally:
            conn.close()
    raise AssertionError(f"the workers answered {[len(v) for v in answers.values()]} times")


def _statuses(answers: dict[int, list[Answer]]) -> set[int]:
    return {status for seen in answers.values() for status, _, _ in seen}


def _idp(served: Served, *args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), env=served.env, input=input,
                              catch_exceptions=False)


def _created(served, *args: str) -> dict:
    result = _idp(served, "clients", "create", "--name", f"Site {uuid.uuid4().hex[:6]}",
                  *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _basic(client_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + b64encode(f"{client_id}:{secret}".encode()).decode()}


def _token(served, client_id: str, secret: str) -> dict[int, list[Answer]]:
    return _on_every_worker(served, "POST", "/token", {"grant_type": "client_credentials"},
                            _basic(client_id, secret))


def test_an_update_applies_at_once_on_every_worker(served):
    """The acceptance test of issue 8: warm both workers' caches, remove a
    redirect URI and change the allowed origins; every following request on
    every worker sees the change."""
    kept, dropped = "https://rp.example.test/cb", "https://rp.example.test/old"
    # Unique: on PostgreSQL the run's other clients share the database.
    tag = uuid.uuid4().hex[:8]
    old_origin, new_origin = f"https://rp-{tag}.example.test", f"https://app-{tag}.example.test"
    client = _created(served, "--redirect-uri", kept, "--redirect-uri", dropped,
                      "--allowed-origin", old_origin, "--subject-type", "public")

    def authorize(redirect_uri: str) -> Callable[[], dict[int, list[Answer]]]:
        query = urlencode({"response_type": "code", "client_id": client["client_id"],
                           "redirect_uri": redirect_uri, "scope": "openid", "state": "s",
                           "code_challenge": pkce_pair()[1], "code_challenge_method": "S256",
                           "prompt": "none"})
        return lambda: _on_every_worker(served, "GET", f"/authorize?{query}")

    def preflight(origin: str) -> set[str | None]:
        answers = _on_every_worker(served, "OPTIONS", "/token", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        return {headers.get("Access-Control-Allow-Origin")
                for seen in answers.values() for _, headers, _ in seen}

    assert _statuses(authorize(dropped)()) == {302}
    assert preflight(old_origin) == {old_origin} and preflight(new_origin) == {None}
    result = _idp(served, "clients", "update", client["client_id"], "--redirect-uri", kept,
                  "--allowed-origin", new_origin)
    assert result.exit_code == 0, result.output
    assert _statuses(authorize(dropped)()) == {400}
    assert _statuses(authorize(kept)()) == {302}
    assert preflight(old_origin) == {None} and preflight(new_origin) == {new_origin}
    shown = json.loads(_idp(served, "clients", "show", client["client_id"], "--json").output)
    assert (shown["redirect_uris"], shown["allowed_origins"]) == ([kept], [new_origin])


def test_an_auth_method_update_applies_at_once_on_every_worker(served):
    client = _created(served, "--grant-type", "client_credentials")
    client_id, secret = client["client_id"], client["client_secret"]
    assert _statuses(_token(served, client_id, secret)) == {200}
    result = _idp(served, "clients", "update", client_id, "--auth-method",
                  "client_secret_post", "--strict-auth-method")
    assert result.exit_code == 0, result.output
    assert "client_secret:" not in result.output  # the secret stays, and stays unshown
    assert _statuses(_token(served, client_id, secret)) == {401}
    assert _statuses(_on_every_worker(served, "POST", "/token", {
        "grant_type": "client_credentials", "client_id": client_id,
        "client_secret": secret})) == {200}


def test_rotate_secret_keeps_the_old_one_for_the_grace_period(served):
    client = _created(served, "--grant-type", "client_credentials")
    client_id, first = client["client_id"], client["client_secret"]
    assert _statuses(_token(served, client_id, first)) == {200}

    def rotate(grace: int) -> dict:
        result = _idp(served, "clients", "rotate-secret", client_id, "--grace", str(grace),
                      "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    second = rotate(600)
    assert second["previous_secret_valid_until"] is not None
    assert _statuses(_token(served, client_id, first)) == {200}
    assert _statuses(_token(served, client_id, second["client_secret"])) == {200}
    # A second rotation ends the first one's grace: the first secret stops.
    third = rotate(2)
    assert _statuses(_token(served, client_id, first)) == {401}
    assert _statuses(_token(served, client_id, third["client_secret"])) == {200}
    time.sleep(2.5)
    assert _statuses(_token(served, client_id, second["client_secret"])) == {401}
    # No grace: the old secret stops at once.
    fourth = rotate(0)
    assert fourth["previous_secret_valid_until"] is None
    assert _statuses(_token(served, client_id, third["client_secret"])) == {401}
    assert _statuses(_token(served, client_id, fourth["client_secret"])) == {200}
    shown = _idp(served, "clients", "show", client_id).output
    assert fourth["client_secret"] not in shown and "has_secret: True" in shown


def test_delete_applies_at_once_on_every_worker(served):
    client = _created(served, "--grant-type", "client_credentials")
    api = _created(served, "--grant-type", "client_credentials", "--resource-server")
    client_id, secret = client["client_id"], client["client_secret"]
    access_token = json.loads(_token(served, client_id, secret).popitem()[1][0][2])[
        "access_token"]

    def introspected() -> set[bool]:
        answers = _on_every_worker(served, "POST", "/introspect", {"token": access_token},
                                   _basic(api["client_id"], api["client_secret"]))
        return {json.loads(body)["active"] for seen in answers.values() for _, _, body in seen}

    assert introspected() == {True}
    refused = _idp(served, "clients", "delete", client_id, input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert _statuses(_token(served, client_id, secret)) == {200}
    result = _idp(served, "clients", "delete", client_id, "--yes")
    assert result.exit_code == 0, result.output
    assert f"deleted client {client_id}; 0 grants revoked, 0 consents deleted" in result.output
    assert _statuses(_token(served, client_id, secret)) == {401}
    assert introspected() == {False}
    assert _idp(served, "clients", "show", client_id).exit_code == 1


@pytest.mark.parametrize("args,message", [
    (["--subject-type", "public"], "subject type cannot change"),
    (["--redirect-uri", "https://elsewhere.example.test/cb"], "would change"),
    (["--clear", "redirect_uris"], "authorization_code needs at least one redirect URI"),
    (["--clear", "allowed_origins", "--allowed-origin", "https://a.example.test"],
     "--clear allowed_origins and a new value for it"),
    (["--public", "--auth-method", "private_key_jwt"], "a public client authenticates"),
    (["--kiosk"], "a kiosk authenticates with private_key_jwt"),
])
def test_update_errors(served, args, message):
    client = _created(served, "--redirect-uri", "https://rp.example.test/cb")
    result = CliRunner().invoke(main, ["clients", "update", client["client_id"], *args],
                                env=served.env)
    assert result.exit_code != 0 and message in result.output
    unknown = CliRunner().invoke(main, ["clients", "update", "no-such-client", "--trusted"],
                                 env=served.env)
    assert "no client is registered as 'no-such-client'" in unknown.output


def test_update_changes_only_what_is_given(served):
    client = _created(served, "--redirect-uri", "https://rp.example.test/cb",
                      "--post-logout-redirect-uri", "https://rp.example.test/",
                      "--trusted", "--min-acr", "L2", "--alg", "ES256")
    result = _idp(served, "clients", "update", client["client_id"], "--name", "Renamed",
                  "--no-trusted", "--clear", "min_acr", "--json")
    assert result.exit_code == 0, result.output
    updated = json.loads(result.output)
    assert (updated["name"], updated["trusted"], updated["min_acr"]) == ("Renamed", False, None)
    unchanged = ("redirect_uris", "post_logout_redirect_uris", "scope", "grant_types",
                 "id_token_signed_response_alg", "subject_type", "sector_identifier",
                 "token_endpoint_auth_method")
    assert {k: updated[k] for k in unchanged} == {k: client[k] for k in unchanged}


def test_made_public_the_command_says_the_grants_were_revoked(served):
    redirect_uri = "https://rp.example.test/cb"
    created = _created(served, "--redirect-uri", redirect_uri, "--trusted")
    client = Registered(created["client_id"], created["client_secret"], redirect_uri)
    username, password = f"user{uuid.uuid4().hex[:10]}", "correct horse battery"
    made = _idp(served, "users", "create", "--username", username, "--password-stdin",
                input=password + "\n")
    assert made.exit_code == 0, made.output
    code = Browser(served.url).login_for_code(client, username, password,
                                              scope="openid offline_access")["code"]
    tokens = redeem(served.url, client, code).json()
    result = _idp(served, "clients", "update", client.client_id, "--public")
    assert result.exit_code == 0, result.output
    assert ("made public: 1 grants revoked (refresh tokens of a confidential client are "
            "bound to its authentication); consents kept") in result.output
    stopped = requests.post(f"{served.url}/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": client.client_id})
    assert stopped.status_code == 400 and stopped.json()["error"] == "invalid_grant"

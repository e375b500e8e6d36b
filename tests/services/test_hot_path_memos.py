"""What the hot paths remember between requests, and when they forget:
verified access tokens (``idp.oidc.tokens.VerifiedTokens``), the session
cookie serializer (``idp.web.SessionCookies``), and the audit writer's
batches (``idp.audit.writer.AuditWriter``)."""

from __future__ import annotations

import json
import threading

import flask
import pytest
from sqlalchemy import func, select


@pytest.fixture
def token(rt, account, client):
    from idp.oidc.tokens import issue_access_token

    return issue_access_token(rt, client_id=client.client_id, scope="openid",
                              subject=account.subject)[0]


def test_a_verified_token_is_remembered_with_the_keys_that_verified_it(rt, token,
                                                                       monkeypatch):
    from idp.oidc import tokens

    memo = tokens.VerifiedTokens()
    first = tokens._decode(rt, token, memo=memo)
    monkeypatch.setattr(tokens.jwt, "decode", lambda *a, **k: pytest.fail("verified twice"))
    assert tokens._decode(rt, token, memo=memo) is first


def test_new_keys_verify_the_token_again(rt, token, monkeypatch):
    """A reload of the key set (rotation, a key leaving the JWKS) makes every
    remembered token be verified again against the keys now published."""
    from idp.oidc import tokens

    memo = tokens.VerifiedTokens()
    tokens._decode(rt, token, memo=memo)
    rt.keys.invalidate()
    calls = []
    decode = tokens.jwt.decode
    monkeypatch.setattr(tokens.jwt, "decode", lambda *a, **k: calls.append(1) or decode(*a, **k))
    tokens._decode(rt, token, memo=memo)
    assert calls == [1]


def test_a_token_that_fails_is_not_remembered(rt, token):
    from idp.oidc import tokens

    memo = tokens.VerifiedTokens()
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[:-4]}AAAA"
    for _ in range(2):
        with pytest.raises(tokens.InvalidTokenError):
            tokens._decode(rt, forged, memo=memo)
    assert memo.get(forged, rt.keys.public_keys()) is None


def test_the_memo_keeps_at_most_its_size_oldest_out_first(rt, token):
    from idp.oidc import tokens

    memo = tokens.VerifiedTokens(size=2)
    keys = rt.keys.public_keys()
    decoded = tokens._decode(rt, token)
    for name in ("a", "b", "c"):
        memo.put(name, keys, decoded)
    assert memo.get("a", keys) is None
    assert memo.get("b", keys) is decoded and memo.get("c", keys) is decoded


def test_the_session_serializer_is_built_once_per_application(idp):
    interface = idp.app.session_interface
    first = interface.get_signing_serializer(idp.app)
    assert first is not None and interface.get_signing_serializer(idp.app) is first
    with idp.app.test_request_context("/", headers={"Cookie": "x=y"}):
        assert interface.open_session(idp.app, flask.request) == {}


def test_audit_events_arriving_together_are_written_in_one_batch(idp, rt, monkeypatch):
    """The writer waits ``interval`` after the first event for more, so a
    busy server commits once per batch instead of once per request."""
    from idp.audit.models import AuditEvent
    from idp.audit.writer import AuditWriter
    from idp.extensions import db

    writer = AuditWriter(idp.app, interval=0.3)
    batches = []
    write = writer._write
    done = threading.Event()

    def counted(rows):
        batches.append(len(rows))
        write(rows)
        done.set()

    monkeypatch.setattr(writer, "_write", counted)
    tag = "batch-test"
    for n in range(5):
        writer.submit({"event": tag, "outcome": "success", "detail": {"n": n}})
    assert done.wait(5)
    assert batches == [5]
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.event == tag)) == 5


def test_flush_does_not_wait_for_the_interval(idp, rt):
    import time

    from idp.audit.writer import AuditWriter

    writer = AuditWriter(idp.app, interval=30)
    writer.submit({"event": "flush-test", "outcome": "success", "detail": {}})
    started = time.monotonic()
    writer.flush()
    assert writer.idle() and time.monotonic() - started < 5


def test_a_flush_keeps_the_events_in_the_order_they_were_queued(idp, rt):
    """The writer thread holds the first event of its batch while it waits
    for more; a flush that wrote the rest of the queue itself put later
    events before it (lower ids: an auditor reading by id saw them in the
    wrong order; seen as a flaky test_client_auth_and_algs on PostgreSQL)."""
    import time

    from idp.audit.models import AuditEvent
    from idp.audit.writer import AuditWriter
    from idp.extensions import db

    writer = AuditWriter(idp.app, interval=30)
    tag = "order-test"
    writer.submit({"event": tag, "outcome": "success", "detail": {"n": 0}})
    deadline = time.monotonic() + 5
    while writer._queue.qsize() and time.monotonic() < deadline:
        time.sleep(0.01)  # until the thread has taken the first event
    for n in (1, 2):
        writer.submit({"event": tag, "outcome": "success", "detail": {"n": n}})
    writer.flush()
    written = db.session.scalars(select(AuditEvent).where(AuditEvent.event == tag)
                                 .order_by(AuditEvent.id))
    assert [event.detail["n"] for event in written] == [0, 1, 2]


def test_a_full_queue_never_makes_a_writing_caller_wait_for_itself(idp, rt, monkeypatch):
    """A caller meeting a full queue wrote the backlog on a connection of
    its own: when its transaction had written already (a refresh rotation),
    that connection waited for the caller's own write lock, 30 s and then a
    500 (found by the attack on issue 9). Its row now goes in with its
    transaction, and the queue is left to the writer."""
    import time

    from idp.audit.models import AuditEvent
    from idp.audit.writer import AuditWriter
    from idp.extensions import db

    writer = AuditWriter(idp.app, max_queue=1, interval=30)
    monkeypatch.setattr(writer._thread, "ensure_started", lambda: None)  # the queue stays full
    tag = "full-queue-test"
    writer.submit({"event": tag, "outcome": "success", "detail": {"n": 0}})
    db.session.execute(AuditEvent.__table__.insert(),
                       [{"event": tag, "outcome": "success", "detail": {"n": -1}}])
    started = time.monotonic()
    writer.submit({"event": tag, "outcome": "success", "detail": {"n": 1}})
    assert time.monotonic() - started < 5
    db.session.commit()
    writer.flush()
    written = db.session.scalars(select(AuditEvent).where(AuditEvent.event == tag)
                                 .order_by(AuditEvent.id))
    assert sorted(event.detail["n"] for event in written) == [-1, 0, 1]


def test_a_deferred_event_reads_back_as_one_written_with_its_change(idp, rt):
    """On PostgreSQL the writer copies its batches in (COPY), elsewhere it
    inserts them: either way a row reads back as the ORM writes it, the
    characters COPY's text format escapes included."""
    from idp.audit.models import AuditEvent
    from idp.audit.service import record
    from idp.audit.writer import AuditWriter
    from idp.extensions import db

    detail = {"text": 'tab\there\nnewline \\N back\\slash "quoted" 汉字 \U0001f600',
              "nested": {"list": [1, None, True, 2.5]}, "empty": ""}
    fields = {"outcome": "failure", "account_id": None, "client_id": "c\t1", "ip": None}
    record("copy-test.orm", **fields, **detail)
    db.session.commit()
    writer = AuditWriter(idp.app, interval=30)
    writer.submit({"event": "copy-test.deferred", **fields, "detail": detail})
    writer.flush()
    orm, deferred = (db.session.scalars(select(AuditEvent).where(AuditEvent.event == event)).one()
                     for event in ("copy-test.orm", "copy-test.deferred"))
    columns = ("outcome", "account_id", "client_id", "ip", "detail")
    assert ({name: getattr(deferred, name) for name in columns}
            == {name: getattr(orm, name) for name in columns} == {**fields, "detail": detail})
    assert abs((deferred.created_at - orm.created_at).total_seconds()) < 60


@pytest.mark.parametrize("alg", ["ES256", "ES384", "RS256", "RS512", "EdDSA"])
def test_tokens_signed_with_the_prepared_header_are_what_joserfc_makes(rt, alg):
    """``idp.oidc.tokens._sign`` assembles the compact serialization itself
    (the header prepared once, joserfc's algorithm signing): the header and
    payload are byte for byte joserfc's ``jwt.encode``, and an independent
    library verifies the signature."""
    import jwt as pyjwt
    from joserfc import jwt
    from joserfc.jwk import KeySet

    from idp.extensions import db
    from idp.oidc import tokens

    rt.keys.ensure((alg,))
    db.session.commit()
    key = rt.keys.signing_key(alg)
    claims = {"iss": rt.issuer, "sub": "s", "name": "张伟", "n": 1}
    for typ in (None, "at+jwt"):
        ours = tokens._sign(rt, alg, claims, typ)
        header = {"alg": alg, "kid": key.kid, **({"typ": typ} if typ else {})}
        theirs = jwt.encode(header, claims, key.key, algorithms=[alg])
        assert ours.rsplit(".", 1)[0] == theirs.rsplit(".", 1)[0]
        jwk = next(k for k in KeySet.import_key_set(json.loads(rt.keys.jwks()[0])).keys
                   if k.kid == key.kid)
        public = pyjwt.PyJWK(jwk.as_dict(private=False))
        decoded = pyjwt.decode(ours, public.key, algorithms=[alg], options={"verify_aud": False})
        assert decoded == claims

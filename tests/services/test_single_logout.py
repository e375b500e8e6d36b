"""Single logout below HTTP (idp.single_logout): what an ended session
queues for its relying parties, how the worker settles each delivery, and
sessions ended at their idle limit by the worker."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest

from idp import sessions, single_logout
from idp.sessions import add_relying_party, create_session
from idp.single_logout import QUEUE, announce, frontchannel_uris
from idp.single_logout.cas_request import logout_request
from idp.single_logout.worker import Outcome, deliver_due, post
from tests.logout_support import LogoutReceiver


@pytest.fixture
def receiver():
    receiver = LogoutReceiver()
    yield receiver
    receiver.stop()


def _queued(rt) -> list[dict]:
    items = []
    while (found := rt.store.queue_claim(QUEUE, 60)) is not None:
        items.append(found[1])
        rt.store.queue_done(QUEUE, found[0])
    return items


def test_an_ended_session_queues_one_notice_per_relying_party_that_asked(idp, rt, account):
    told = idp.create_client(backchannel_logout_uri="https://rp.example.test/bc")
    silent = idp.create_client()
    cas = idp.create_client(backchannel_logout_uri="https://cas.example.test/bc")
    sso = create_session(rt.store, account.id, ["pwd"], 600)
    add_relying_party(rt.store, sso, told.client_id)
    add_relying_party(rt.store, sso, silent.client_id)
    for ticket in ("ST-1", "ST-2"):
        assert sessions.record_ticket(rt.store, account.id, sso.sid, cas.client_id,
                                      "https://cas.example.test/app", ticket)
    add_relying_party(rt.store, sso, "a-client-since-deleted")
    assert announce(rt, sso, "logout") == 3
    queued = sorted(_queued(rt), key=lambda item: (item["kind"], item.get("ticket", "")))
    assert [(i["kind"], i["uri"], i.get("ticket")) for i in queued] == [
        ("backchannel", "https://rp.example.test/bc", None),
        ("cas", "https://cas.example.test/app", "ST-1"),
        ("cas", "https://cas.example.test/app", "ST-2")]
    assert queued[0]["sub"] == account.subject and queued[0]["sid"] == sso.sid
    assert all(i["attempt"] == 1 and i["reason"] == "logout" for i in queued)


def test_a_delivery_is_settled_by_its_answer(idp, rt, account, receiver):
    client = idp.create_client(backchannel_logout_uri=receiver.url)
    sso = create_session(rt.store, account.id, ["pwd"], 600)
    add_relying_party(rt.store, sso, client.client_id)
    announce(rt, sso, "logout")
    assert deliver_due(rt) == 1
    [delivery] = receiver.received
    claims = pyjwt.decode(delivery["logout_token"], options={"verify_signature": False})
    assert claims["aud"] == client.client_id and claims["sid"] == sso.sid
    assert deliver_due(rt) == 0  # done: nothing left


def test_a_retry_waits_and_counts_its_attempts(idp, rt, account):
    failing = LogoutReceiver(status=503)
    try:
        client = idp.create_client(backchannel_logout_uri=failing.url)
        sso = create_session(rt.store, account.id, ["pwd"], 600)
        add_relying_party(rt.store, sso, client.client_id)
        announce(rt, sso, "idle_timeout")
        assert deliver_due(rt) == 1
        assert deliver_due(rt) == 0  # the retry is not due yet
        [item] = _queued_after(rt, rt.settings["logout"]["retry_delay"])
        assert item["attempt"] == 2 and item["reason"] == "idle_timeout"
    finally:
        failing.stop()


def _queued_after(rt, seconds: int) -> list[dict]:
    """What the queue holds, due within ``seconds`` (claimed with a lease
    long enough, then read)."""
    found = None
    deadline = time.monotonic() + seconds + 5
    while found is None and time.monotonic() < deadline:
        found = rt.store.queue_claim(QUEUE, 60)
        time.sleep(0.2)
    assert found is not None
    rt.store.queue_done(QUEUE, found[0])
    return [found[1]]


def test_post_reads_the_status_only():
    assert post("http://127.0.0.1:9/none", {}, 1) == Outcome(False, True,
                                                             "ConnectionRefusedError")
    for status, retry in ((500, True), (429, True), (408, True), (400, False), (404, False)):
        receiver = LogoutReceiver(status=status)
        try:
            assert post(receiver.url, {"logout_token": "x"}, 2) == Outcome(False, retry,
                                                                           str(status))
        finally:
            receiver.stop()
    for status in (200, 204):
        receiver = LogoutReceiver(status=status)
        try:
            assert post(receiver.url, {}, 2).delivered
        finally:
            receiver.stop()


def test_a_session_at_its_idle_limit_is_ended_by_the_worker(rt, account, monkeypatch):
    told: list[tuple[str, str]] = []
    monkeypatch.setattr(single_logout, "announce",
                        lambda rt, session, reason: told.append((session.sid, reason)))
    idle = create_session(rt.store, account.id, ["pwd"], 600, idle_ttl=1)
    busy = create_session(rt.store, account.id, ["pwd"], 600, idle_ttl=600)
    time.sleep(1.2)
    assert sessions.end_expired(rt) == 1
    assert told == [(idle.sid, "idle_timeout")]
    assert [s.sid for s in sessions.list_sessions(rt.store, account.id)] == [busy.sid]
    # Ended once: the worker finds nothing more, and ending it again tells no one.
    assert sessions.end_expired(rt) == 0
    sessions.end(rt, idle, "logout", revoke_grants=False)
    assert told == [(idle.sid, "idle_timeout")]


def test_the_list_shows_the_accounts_live_sessions_newest_first(rt, account):
    first = create_session(rt.store, account.id, ["pwd"], 600, user_agent="UA 1",
                           ip="192.0.2.1")
    second = create_session(rt.store, account.id, ["pwd"], 600, public=True, idle_ttl=60)
    second.started_at = first.started_at + 1
    sessions.save_session(rt.store, second)
    listed = sessions.list_sessions(rt.store, account.id)
    assert [s.sid for s in listed] == [second.sid, first.sid]
    assert listed[1].user_agent == "UA 1" and listed[1].ip == "192.0.2.1"
    assert all(s.handle == "" for s in listed)  # a listing hands out no cookie
    assert listed[0].public


def test_frontchannel_uris_carry_iss_and_sid_when_asked(idp, rt, account):
    plain = idp.create_client(redirect_uri="https://a.example.test/cb",
                              frontchannel_logout_uri="https://a.example.test/fc")
    asks = idp.create_client(redirect_uri="https://b.example.test/cb",
                             frontchannel_logout_uri="https://b.example.test/fc?x=1",
                             frontchannel_logout_session_required=True)
    sso = create_session(rt.store, account.id, ["pwd"], 600)
    for client in (plain, asks, plain):
        add_relying_party(rt.store, sso, client.client_id)
    uris = sorted(frontchannel_uris(rt, sso))
    assert uris[0] == "https://a.example.test/fc"
    assert uris[1].startswith("https://b.example.test/fc?x=1&iss=")
    assert f"sid={sso.sid}" in uris[1] and len(uris) == 2


def test_the_cas_logout_request_names_the_ticket():
    document = logout_request("ST-1-abc<&>")
    assert "<samlp:SessionIndex>ST-1-abc&lt;&amp;&gt;</samlp:SessionIndex>" in document
    assert 'Version="2.0"' in document and "@NOT_USED@" in document


def _dripping_server():
    """A server that answers one header byte every half second, forever."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            def drip(conn=conn):
                try:
                    conn.recv(65536)
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                        conn.send(bytes([byte]))
                        time.sleep(0.5)
                except OSError:
                    pass
                finally:
                    conn.close()
            threading.Thread(target=drip, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}/logout"


def test_a_dripping_relying_party_is_cut_off_at_the_deadline():
    listener, url = _dripping_server()
    try:
        started = time.monotonic()
        outcome = post(url, {"logout_token": "x"}, 1)
        assert time.monotonic() - started < 2.5
        assert outcome == Outcome(False, True, "deadline passed")
    finally:
        listener.close()


def test_concurrent_ticket_validations_lose_no_relying_party(idp, rt, account):
    import threading

    cas = idp.create_client(cas="https://concurrent.example.test/app/")
    sso = create_session(rt.store, account.id, ["pwd"], 600)
    tickets = [f"ST-{n}" for n in range(12)]
    barrier = threading.Barrier(len(tickets))

    def record(ticket):
        barrier.wait()
        sessions.record_ticket(rt.store, account.id, sso.sid, cas.client_id,
                               "https://concurrent.example.test/app/", ticket)

    threads = [threading.Thread(target=record, args=(t,)) for t in tickets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    add_relying_party(rt.store, sso, idp.create_client().client_id)
    from idp import relying_parties

    recorded = {party.get("ticket") for party in relying_parties.of(rt.store, sso)}
    assert set(tickets) <= recorded and len(recorded) == len(tickets) + 1


def test_a_session_keeps_a_bounded_number_of_parties(idp, rt, account, monkeypatch):
    from idp import relying_parties

    monkeypatch.setattr(relying_parties, "MAX_PARTIES", 5)
    cas = idp.create_client(cas="https://bounded.example.test/app/")
    sso = create_session(rt.store, account.id, ["pwd"], 600)
    for n in range(8):
        sessions.record_ticket(rt.store, account.id, sso.sid, cas.client_id,
                               "https://bounded.example.test/app/", f"ST-{n}")
    parties = relying_parties.of(rt.store, sso)
    assert len(parties) == 5 and "ST-7" in {p["ticket"] for p in parties}


def test_frame_sources_keep_percent_escapes_and_escape_separators(idp):
    from flask import g

    from idp.web import allow_frames

    with idp.app.test_request_context():
        allow_frames(["https://rp.example.test/sign%20out?x=1",
                      "https://rp.example.test/a;b,c", "https://bad host/x"])
        assert g.idp_frame_sources == ["https://rp.example.test/sign%20out",
                                       "https://rp.example.test/a%3Bb%2Cc"]


def test_the_deadline_covers_name_resolution(monkeypatch):
    import socket

    from idp.outbound import OutboundError, call

    real = socket.getaddrinfo

    def slow(*args, **kwargs):
        time.sleep(3)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    started = time.monotonic()
    with pytest.raises(OutboundError, match="deadline passed"):
        call("POST", "http://127.0.0.1:9/x", form={"a": "b"}, timeout=1)
    assert time.monotonic() - started < 1.5


def test_one_service_cannot_push_another_out_of_single_logout(idp, rt, account, monkeypatch):
    from idp import relying_parties

    monkeypatch.setattr(relying_parties, "MAX_PARTIES", 3)
    honest = idp.create_client(cas="https://honest.example.test/")
    noisy = idp.create_client(cas="https://noisy.example.test/")
    sso = create_session(rt.store, account.id, ["pwd"], 600)
    sessions.record_ticket(rt.store, account.id, sso.sid, honest.client_id,
                           "https://honest.example.test/", "ST-honest")
    for n in range(6):
        sessions.record_ticket(rt.store, account.id, sso.sid, noisy.client_id,
                               "https://noisy.example.test/", f"ST-noisy-{n}")
    tickets = {p["ticket"] for p in relying_parties.of(rt.store, sso)}
    assert "ST-honest" in tickets and "ST-noisy-5" in tickets and len(tickets) == 3


def test_a_party_added_as_the_session_ends_is_refused(idp, rt, account):
    client = idp.create_client()
    sso = create_session(rt.store, account.id, ["pwd"], 600)
    copy = sessions.load_session(rt.store, sso.handle)
    sessions.end(rt, sso, "logout", revoke_grants=False)
    assert add_relying_party(rt.store, copy, client.client_id) is False
    assert sessions.record_ticket(rt.store, account.id, sso.sid, client.client_id,
                                  "https://x.example.test/", "ST-late") is False

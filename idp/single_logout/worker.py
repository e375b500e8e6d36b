"""The single-logout worker: one background thread in each provider
process that ends sessions at their idle or absolute limit
(:func:`idp.sessions.end_expired`) and delivers the queued logout
notices (:data:`idp.single_logout.QUEUE`).

A delivery is one POST, sent without following redirects (Back-Channel
Logout 1.0 §2.5 names the registered URI, nowhere else), within
``logout.delivery_timeout`` seconds. It succeeds on 200 or 204 (§2.8); a
timeout, a refused connection or a 5xx, 408 or 429 answer is retried after
``logout.retry_delay`` seconds, then twice as long each time, up to
``logout.delivery_attempts`` attempts; any other answer (a 400: the relying
party refused the token) is final. Each delivered or failed notice is
audited (``logout.delivered``, ``logout.delivery_failed``). Items are
claimed with a lease, so a process that dies mid-delivery leaves its items
to the others.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from flask import Flask

from idp.audit.service import record_deferred
from idp.process_thread import ProcessThread
from idp.runtime import Runtime
from idp.single_logout import QUEUE
from idp.single_logout.cas_request import logout_request

log = logging.getLogger(__name__)

#: Seconds between two looks at the queues when nothing wakes the worker.
POLL_SECONDS = 1.0
#: Deliveries sent at once by one process.
SENDERS = 4
#: Most bytes of an answer read (the status is what counts).
_ANSWER_BYTES = 4096


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt gave.

    :ivar delivered: the relying party confirmed it.
    :ivar retry: a later attempt may succeed.
    :ivar detail: the status code or error, for the audit trail.
    """

    delivered: bool
    retry: bool
    detail: str


def post(uri: str, form: dict[str, str], timeout: float) -> Outcome:
    """POST ``form`` (``application/x-www-form-urlencoded``) to ``uri``
    without following redirects; the answer's status decides (module
    docstring)."""
    try:
        with requests.post(uri, data=form, timeout=timeout, allow_redirects=False,
                           stream=True, headers={"Cache-Control": "no-store"}) as answer:
            answer.raw.read(_ANSWER_BYTES, decode_content=False)
            status = answer.status_code
    except requests.RequestException as exc:
        return Outcome(False, True, type(exc).__name__)
    if status in (200, 204):
        return Outcome(True, False, str(status))
    return Outcome(False, status >= 500 or status in (408, 429), str(status))


def message(rt: Runtime, item: dict) -> dict[str, str] | None:
    """The form a queued delivery POSTs: ``logout_token`` (Back-Channel
    Logout 1.0 §2.5) or ``logoutRequest`` (CAS 3.0 Appendix C); None for an
    item whose client is gone (nothing to tell)."""
    from idp.oidc.tokens import issue_logout_token

    if item["kind"] == "cas":
        return {"logoutRequest": logout_request(item["ticket"])}
    client = rt.clients.get(item["client_id"])
    if client is None:
        return None
    return {"logout_token": issue_logout_token(rt, client_id=client.client_id, alg=client.alg,
                                               subject=item.get("sub"), sid=item.get("sid"))}


def deliver_due(rt: Runtime, pool: ThreadPoolExecutor | None = None, limit: int = 50) -> int:
    """Send up to ``limit`` due deliveries (in the pool's threads, else
    here) and settle each: done, retried later, or given up. Needs an
    application context.

    :returns: how many were sent.
    """
    settings = rt.settings["logout"]
    timeout = settings["delivery_timeout"]
    claimed = []
    while len(claimed) < limit:
        found = rt.store.queue_claim(QUEUE, timeout * 2 + 30)
        if found is None:
            break
        claimed.append(found)
    forms = [message(rt, item) for _, item in claimed]
    sends = [(item["uri"], form, timeout) for (_, item), form in zip(claimed, forms,
                                                                     strict=True)]
    outcomes = list(pool.map(lambda args: post(*args), sends) if pool is not None
                    else (post(*args) for args in sends))
    for (item_id, item), form, outcome in zip(claimed, forms, outcomes, strict=True):
        if form is None:
            rt.store.queue_done(QUEUE, item_id)
            continue
        _settle(rt, item_id, item, outcome)
    return len(claimed)


def _settle(rt: Runtime, item_id: str, item: dict, outcome: Outcome) -> None:
    settings = rt.settings["logout"]
    detail = {"kind": item["kind"], "attempt": item["attempt"], "answer": outcome.detail,
              "reason": item["reason"]}
    if outcome.delivered:
        rt.store.queue_done(QUEUE, item_id)
        record_deferred(rt.audit, "logout.delivered", account_id=item["account_id"],
                        client_id=item["client_id"], **detail)
        return
    if outcome.retry and item["attempt"] < settings["delivery_attempts"]:
        delay = settings["retry_delay"] * 2 ** (item["attempt"] - 1)
        rt.store.queue_push(QUEUE, item_id, {**item, "attempt": item["attempt"] + 1},
                            delay, delay + 3600)
        return
    rt.store.queue_done(QUEUE, item_id)
    record_deferred(rt.audit, "logout.delivery_failed", "failure",
                    account_id=item["account_id"], client_id=item["client_id"], **detail)


class LogoutWorker:
    """The worker thread of one process, started at the process's first
    request (a thread started before a server forks would not exist in its
    workers) and woken when a session ends here.

    :param app: the application whose runtime it works for.
    """

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._woken = threading.Event()
        self._stopped = False
        self._thread = ProcessThread(self._run, "single-logout", before_start=self._renew)

    def _renew(self) -> None:
        # A fork copies the event in whatever state its lock was.
        self._woken = threading.Event()

    def ensure_started(self) -> None:
        """Start this process's thread unless it runs (or was stopped)."""
        if not self._stopped:
            self._thread.ensure_started()

    def wake(self) -> None:
        """Look at the queues now rather than at the next poll."""
        if self._stopped:
            return
        self.ensure_started()
        self._woken.set()

    def stop(self, timeout: float = 10.0) -> None:
        """End this process's thread after its current pass (waiting up to
        ``timeout`` seconds), for an application being closed; what is left
        in the queues stays for the other processes."""
        self._stopped = True
        self._woken.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        from idp.runtime import current_runtime
        from idp.sessions import end_expired

        with ThreadPoolExecutor(SENDERS, thread_name_prefix="single-logout-send") as pool:
            while not self._stopped:
                self._woken.wait(POLL_SECONDS)
                self._woken.clear()
                if self._stopped:
                    break
                try:
                    with self._app.app_context():
                        rt = current_runtime()
                        end_expired(rt)
                        while deliver_due(rt, pool):
                            pass
                except Exception:  # noqa: BLE001 - the worker must survive a store or DB outage
                    log.exception("single logout: a pass failed; trying again")

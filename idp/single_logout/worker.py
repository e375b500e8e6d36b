"""The single-logout worker: one background thread in each provider
process that ends sessions at their idle or absolute limit
(:func:`idp.sessions.end_expired`) and delivers the queued logout
notices (:data:`idp.single_logout.QUEUE`).

A delivery is one POST, sent without following redirects (Back-Channel
Logout 1.0 §2.5 names the registered URI, nowhere else), which must be
answered within ``logout.delivery_timeout`` seconds in all
(:mod:`idp.outbound`: a server dripping its answer is cut off then). It
succeeds on 200 or 204 (§2.8); a timeout, a refused connection or a 5xx,
408 or 429 answer is retried after ``logout.retry_delay`` seconds, then
twice as long each time, up to
``logout.delivery_attempts`` attempts; any other answer (a 400: the relying
party refused the token) is final. Each delivered or failed notice is
audited (``logout.delivered``, ``logout.delivery_failed``). Items are
claimed a few at a time, as many as are sent at once, each with a lease
longer than its send may take, so a process that dies mid-delivery leaves
its items to the others and no item is claimed twice while it is sent.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from flask import Flask

from idp.audit.service import record_deferred
from idp.outbound import OutboundError, call
from idp.process_thread import ProcessThread
from idp.runtime import Runtime
from idp.single_logout import QUEUE
from idp.single_logout.cas_request import logout_request

log = logging.getLogger(__name__)

#: Seconds between two looks at the queues when nothing wakes the worker.
POLL_SECONDS = 1.0
#: Deliveries sent at once by one process: a dead relying party holds a
#: sender for ``logout.delivery_timeout`` seconds, the others go on.
SENDERS = 8


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
    without following redirects, within ``timeout`` seconds in all; the
    answer's status decides (module docstring)."""
    try:
        status = call("POST", uri, form=form, timeout=timeout)
    except OutboundError as exc:
        return Outcome(False, True, str(exc))
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


def deliver_due(rt: Runtime, pool: ThreadPoolExecutor | None = None,
                limit: int = SENDERS) -> int:
    """Claim up to ``limit`` due deliveries, send them at once (in the
    pool's threads, else one after the other here), and settle each: done,
    retried later, or given up. The lease outlasts the sends, so keep
    ``limit`` to the pool's size. Needs an application context.

    :returns: how many were claimed.
    """
    settings = rt.settings["logout"]
    timeout = settings["delivery_timeout"]
    claimed = []
    while len(claimed) < limit:
        found = rt.store.queue_claim(QUEUE, timeout * (1 if pool is not None else limit) + 30)
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
                        # A round sends at most SENDERS, each within its
                        # timeout: the sessions' ends are looked at between.
                        while deliver_due(rt, pool, SENDERS) and not self._stopped:
                            end_expired(rt)
                except Exception:  # noqa: BLE001 - the worker must survive a store or DB outage
                    log.exception("single logout: a pass failed; trying again")

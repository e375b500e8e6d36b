"""HTTP client of the data-sharing gateway (``docs/connectors.md``).

:class:`GatewayClient` implements every registry Protocol of
:mod:`connectors.registries` and :class:`connectors.sms.SmsGateway` over one
signed JSON protocol, with:

- timeouts on every request;
- bounded retries with exponential backoff, for the verification queries
  only (they are idempotent); an SMS send is never retried, because a retry
  after a lost answer could deliver the message twice;
- a circuit breaker: after ``breaker_threshold`` consecutive failed calls it
  fails fast for ``breaker_reset`` seconds, then lets one trial call through;
- a TTL cache of positive answers only (match, active), so a negative answer
  or an outage is always asked again.

Nothing here logs or raises personal data: messages name the endpoint and
the HTTP status only; identifiers appear in debug logs masked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from connectors.identifiers import mask_phone, mask_resident_id
from connectors.registries import (
    CardCheck,
    CardStatus,
    CarrierCheck,
    CarrierResult,
    FaceComparison,
    FaceDecision,
    GatewayRequestError,
    LegalEntityCheck,
    LegalEntityResult,
    PopulationCheck,
    PopulationResult,
    Registries,
    RegistryUnavailableError,
)
from connectors.signing import canonical_query, sign_request
from connectors.sms import SmsGatewayError, SmsReceipt

log = logging.getLogger(__name__)

#: Most entries the positive-answer cache keeps (oldest evicted first).
CACHE_MAX_ENTRIES = 10_000


class SmsRejectedError(SmsGatewayError, GatewayRequestError):
    """The gateway refused an SMS (HTTP 4xx): nothing was sent.

    Both an :class:`SmsGatewayError` (what the OTP service handles) and a
    :class:`GatewayRequestError` (carrying the gateway's error code).
    """


class CircuitBreaker:
    """Fails calls fast after ``threshold`` consecutive failures.

    Closed: calls pass. Open (after ``threshold`` failures in a row): calls
    are refused for ``reset`` seconds. Then half-open: exactly one trial
    call passes; its success closes the breaker, its failure opens it again.
    Thread-safe; state is per process (each worker learns of an outage by
    itself, which costs at most ``threshold`` slow calls per worker).

    :param clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, threshold: int, reset: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = max(1, threshold)
        self.reset = reset
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until: float | None = None
        self._trial_running = False

    @property
    def is_open(self) -> bool:
        """True while calls are refused (open, or half-open with the trial running)."""
        with self._lock:
            return self._open_until is not None and (
                self._clock() < self._open_until or self._trial_running)

    def acquire(self) -> bool:
        """May a call go out now? (In half-open state, True for the one trial only.)"""
        with self._lock:
            if self._open_until is None:
                return True
            if self._clock() < self._open_until or self._trial_running:
                return False
            self._trial_running = True
            return True

    def success(self) -> None:
        """Record a successful call: the breaker closes."""
        with self._lock:
            self._failures = 0
            self._open_until = None
            self._trial_running = False

    def failure(self) -> None:
        """Record a failed call (after its retries): may open the breaker."""
        with self._lock:
            self._failures += 1
            if self._trial_running or self._failures >= self.threshold:
                self._open_until = self._clock() + self.reset
            self._trial_running = False


class PositiveCache:
    """In-process TTL cache of positive answers, keyed by a SHA-256 of the
    request (so the keys hold no identifiers in clear). Thread-safe, bounded.

    :param ttl: seconds an answer is served; 0 disables the cache.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = CACHE_MAX_ENTRIES) -> None:
        self.ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    @staticmethod
    def key(path: str, body: Mapping[str, Any]) -> str:
        """Hex SHA-256 of the endpoint and the canonical JSON of the request body."""
        text = path + "\n" + json.dumps(body, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> Any | None:
        """The cached answer, or None if absent or expired."""
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._data[key]
                return None
            return entry[1]

    def put(self, key: str, value: Any) -> None:
        """Keep ``value`` for ``ttl`` seconds (no-op when the cache is disabled)."""
        if self.ttl <= 0:
            return
        with self._lock:
            self._data[key] = (self._clock() + self.ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)


class _Unavailable(Exception):
    """Internal: one attempt failed in a way worth retrying; message safe to show."""


class GatewayClient:
    """Client of the data-sharing gateway; one instance per process, shared by threads.

    :param base_url: the gateway's URL (``https://gateway.example.gov.cn``, a
        path prefix is kept).
    :param access_key: the access key id (sent in clear).
    :param secret: the HMAC secret of that key (never sent).
    :param timeout: seconds for connecting and, separately, for reading the answer.
    :param retries: extra attempts of a verification query after a timeout,
        transport error or 5xx (0 = none); SMS sends are never retried.
    :param breaker_threshold: consecutive failed calls that open the breaker.
    :param breaker_reset: seconds the open breaker refuses calls before a trial.
    :param cache_ttl: seconds a positive answer (match, active) is reused; 0 = off.
    :param backoff: seconds before the first retry; doubled for each further one.
    :param clock: wall clock for the signed date (tests inject a skewed one).
    :param monotonic: clock of the breaker and the cache (tests inject one).
    :param sleep: how to wait between retries (tests inject a no-op).
    :param session: a :class:`requests.Session` to use (default: a new one).
    """

    def __init__(self, base_url: str, access_key: str, secret: str, timeout: float = 5.0,
                 retries: int = 2, breaker_threshold: int = 5, breaker_reset: float = 30.0,
                 cache_ttl: float = 600, *, backoff: float = 0.2,
                 clock: Callable[[], datetime] | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 session: requests.Session | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("gateway base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self._prefix = urlsplit(self.base_url).path
        self.access_key = access_key
        self._secret = secret
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self.breaker = CircuitBreaker(breaker_threshold, breaker_reset, monotonic)
        self.cache = PositiveCache(cache_ttl, monotonic)
        self.session = session or requests.Session()

    def __repr__(self) -> str:  # keeps the secret out of tracebacks and logs
        return f"GatewayClient({self.base_url!r}, access_key={self.access_key!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    # -- the protocol --------------------------------------------------------

    def _attempt(self, method: str, path: str, query: Mapping[str, str] | None,
                 body: Mapping[str, Any] | None) -> dict:
        """One signed request. Returns the JSON answer of a 2xx.

        :raises _Unavailable: timeout, transport error, 5xx/429 or a non-JSON answer.
        :raises GatewayRequestError: any other 4xx.
        """
        raw = b"" if body is None else json.dumps(
            body, separators=(",", ":"), ensure_ascii=False).encode()
        qs = canonical_query(urlencode(query or {}))
        full_path = self._prefix + path
        headers = sign_request(self.access_key, self._secret, method, full_path, qs, raw,
                               self._clock())
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = self.base_url + path + (f"?{qs}" if qs else "")
        try:
            resp = self.session.request(method, url, data=raw or None, headers=headers,
                                        timeout=(self.timeout, self.timeout),
                                        allow_redirects=False)
        except requests.Timeout:
            raise _Unavailable(f"gateway {path}: timed out") from None
        except requests.RequestException as exc:
            raise _Unavailable(f"gateway {path}: {type(exc).__name__}") from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise _Unavailable(f"gateway {path}: HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            data = None
        if 400 <= resp.status_code < 500:
            code = data.get("error") if isinstance(data, dict) else None
            field = data.get("field") if isinstance(data, dict) else None
            raise GatewayRequestError(str(code or "http_error"), resp.status_code,
                                      str(field) if field else None)
        if resp.status_code != 200 or not isinstance(data, dict):
            raise _Unavailable(f"gateway {path}: unexpected answer (HTTP {resp.status_code})")
        return data

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None,
              query: Mapping[str, str] | None = None, idempotent: bool = True) -> dict:
        """A call through the breaker, with retries when ``idempotent``.

        :raises RegistryUnavailableError: breaker open, or every attempt failed.
        :raises GatewayRequestError: the gateway refused the request (4xx).
        """
        if not self.breaker.acquire():
            log.warning("gateway %s: circuit open, failing fast", path)
            raise RegistryUnavailableError(f"gateway {path}: circuit open")
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            try:
                data = self._attempt(method, path, query, body)
            except _Unavailable as exc:
                log.warning("%s (attempt %d of %d)", exc, attempt + 1, attempts)
                if attempt + 1 < attempts:
                    self._sleep(self.backoff * 2 ** attempt)
                    continue
                self.breaker.failure()
                raise RegistryUnavailableError(str(exc)) from None
            except GatewayRequestError:
                # The gateway is up and answered: not an outage for the breaker.
                self.breaker.success()
                raise
            self.breaker.success()
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _verify(self, path: str, body: dict[str, str], parse: Callable[[dict], Any],
                positive: Callable[[Any], bool]) -> Any:
        """A cached, retried verification query; only positive answers are cached."""
        key = self.cache.key(path, body)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        data = self._call("POST", path, body)
        try:
            answer = parse(data)
        except (KeyError, TypeError, ValueError):
            # An answer we cannot read must not count as a negative result.
            log.warning("gateway %s: malformed answer", path)
            raise RegistryUnavailableError(f"gateway {path}: malformed answer") from None
        if positive(answer):
            self.cache.put(key, answer)
        return answer

    # -- registries ----------------------------------------------------------

    def verify_person(self, name: str, id_number: str) -> PopulationCheck:
        """Population registry: name + ID number. See :class:`PopulationRegistry`."""
        log.debug("population check for %s", mask_resident_id(id_number))
        return self._verify(
            "/population/v1/verify", {"name": name, "id_number": id_number},
            lambda d: PopulationCheck(PopulationResult(d["result"]), _ref(d)),
            lambda a: a.result is PopulationResult.MATCH)

    def verify_entity(self, uscc: str, name: str, representative_name: str | None = None,
                      representative_id_number: str | None = None) -> LegalEntityCheck:
        """Legal-entity registry: credit code + name, and the legal
        representative when given. See :class:`LegalEntityRegistry`."""
        body = {"uscc": uscc, "name": name}
        if representative_name is not None or representative_id_number is not None:
            log.debug("legal representative check for %s",
                      mask_resident_id(representative_id_number or ""))
            body.update(representative_name=representative_name or "",
                        representative_id_number=representative_id_number or "")
        return self._verify(
            "/legal-entity/v1/verify", body,
            lambda d: LegalEntityCheck(LegalEntityResult(d["result"]), _ref(d)),
            lambda a: a.result is LegalEntityResult.MATCH)

    def check_card(self, id_number: str, card_number: str) -> CardCheck:
        """Social-security card status. See :class:`SocialSecurityRegistry`."""
        log.debug("card check for %s", mask_resident_id(id_number))
        return self._verify(
            "/social-security/v1/card", {"id_number": id_number, "card_number": card_number},
            lambda d: CardCheck(CardStatus(d["status"]), _ref(d)),
            lambda a: a.status is CardStatus.ACTIVE)

    def verify_phone(self, name: str, id_number: str, phone: str) -> CarrierCheck:
        """Carrier three-element check. See :class:`CarrierVerifier`."""
        log.debug("carrier check for %s / %s", mask_resident_id(id_number), mask_phone(phone))
        return self._verify(
            "/carrier/v1/verify", {"name": name, "id_number": id_number, "phone": phone},
            lambda d: CarrierCheck(CarrierResult(d["result"]), _ref(d)),
            lambda a: a.result is CarrierResult.MATCH)

    def compare_face(self, id_number: str, name: str, liveness_token: str) -> FaceComparison:
        """Face comparison by liveness token. See :class:`FaceComparator`.

        Never cached, not even a pass: a liveness token stands for one live
        capture and is single-use at the service, so a cached pass would let
        a replayed token skip the service's own replay check.
        """
        log.debug("face comparison for %s", mask_resident_id(id_number))
        data = self._call("POST", "/face/v1/compare", {
            "id_number": id_number, "name": name, "liveness_token": liveness_token})
        try:
            score = float(data["score"])
            if not 0.0 <= score <= 1.0:
                raise ValueError("score out of range")
            return FaceComparison(score, FaceDecision(data["decision"]), _ref(data))
        except (KeyError, TypeError, ValueError):
            log.warning("gateway /face/v1/compare: malformed answer")
            raise RegistryUnavailableError("gateway /face/v1/compare: malformed answer") from None

    # -- SMS -----------------------------------------------------------------

    def send(self, template: str, phone: str, params: Mapping[str, str]) -> SmsReceipt:
        """Send an SMS (:class:`connectors.sms.SmsGateway`); never retried.

        :raises SmsGatewayError: timeout, transport error, 5xx or circuit open
            (the message may or may not have gone out on a timeout).
        :raises SmsRejectedError: the gateway refused it (4xx).
        """
        log.debug("sms %s to %s", template, mask_phone(phone))
        try:
            data = self._call("POST", "/sms/v1/send",
                              {"template": template, "phone": phone, "params": dict(params)},
                              idempotent=False)
        except RegistryUnavailableError as exc:
            raise SmsGatewayError(str(exc)) from None
        except GatewayRequestError as exc:
            raise SmsRejectedError(exc.code, exc.status, exc.field) from None
        message_id = data.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise SmsGatewayError("gateway /sms/v1/send: malformed answer")
        return SmsReceipt(message_id=message_id)


def _ref(data: dict) -> str:
    reference = data["reference"]
    if not isinstance(reference, str) or not reference:
        raise ValueError("reference missing")
    return reference


def from_settings(settings: Mapping[str, Any]) -> Registries:
    """The registries the ``[gateway]`` settings section configures: one
    :class:`GatewayClient` serves every field of :class:`Registries`.

    :returns: every field None when ``gateway.url`` is empty (no gateway configured).
    :raises ValueError: a URL is set but the access key or secret is missing.
    """
    gw = settings["gateway"]
    if not gw["url"]:
        return Registries()
    if not gw["access_key"] or not gw["secret"]:
        raise ValueError("setting gateway.url is set but gateway.access_key or "
                         "gateway.secret (IDP_GATEWAY__SECRET) is empty")
    client = GatewayClient(gw["url"], gw["access_key"], gw["secret"], timeout=gw["timeout"],
                           retries=gw["retries"], breaker_threshold=gw["breaker_threshold"],
                           breaker_reset=gw["breaker_reset"], cache_ttl=gw["cache_ttl"])
    return Registries(population=client, legal_entity=client, social_security=client,
                      carrier=client, face=client, sms=client)

"""CPU cost of signing one ID token per algorithm, in-process.

Issue 7 made RS256 the ID-token default for clients that register no
algorithm (OIDC Dynamic Client Registration §2). This prints what one
signature costs with the keys ``idp.oidc.keys`` generates (RSA 2048,
P-256, Ed25519) and joserfc, for a claim set the size of a real ID token,
so the cost of the default can be read beside the end-to-end refresh figures of
``bench/peer/run.sh`` (``BENCH_WEB_ALG=RS256``).

Usage: ``python bench/signing.py [--seconds 3]``; prints one row per
algorithm: signatures per second on one core, milliseconds per signature,
and the same for verification.
"""

from __future__ import annotations

import argparse
import time

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

#: The keys ``idp.oidc.keys`` generates for each algorithm.
KEYS = {
    "ES256": lambda: ECKey.generate_key("P-256", private=True),
    "RS256": lambda: RSAKey.generate_key(2048, private=True),
    "EdDSA": lambda: OKPKey.generate_key("Ed25519", private=True),
}

CLAIMS = {
    "iss": "https://idp.example.gov.cn", "sub": "pW6bKhInkTgkwocsXK_ldQ",
    "aud": "SIfHumN2ibzg-2RXklN-oA", "exp": 1_800_000_300, "iat": 1_800_000_000,
    "auth_time": 1_799_999_000, "nonce": "n-0S6_WzA2Mj", "acr": "urn:idp:acr:L2",
    "amr": ["pwd"], "sid": "QpiPPaq8qTMw", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
}


def _rate(operation, seconds: float) -> tuple[float, float]:
    """Run ``operation`` for ``seconds`` of wall time on this thread.

    :returns: (operations per second, milliseconds of process CPU per operation).
    """
    count, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        for _ in range(20):
            operation()
        count += 20
    elapsed = time.perf_counter() - started
    return count / elapsed, (time.process_time() - cpu) * 1000 / count


def _measure(alg: str, seconds: float) -> tuple[float, float, float, float]:
    """Sign and verify :data:`CLAIMS` with a fresh key of ``alg``.

    :returns: (signatures/s, CPU ms per signature, verifications/s, CPU ms per
        verification).
    """
    key = KEYS[alg]()
    header = {"alg": alg, "kid": key.thumbprint(), "typ": "JWT"}
    token = jwt.encode(header, CLAIMS, key, algorithms=[alg])
    return (*_rate(lambda: jwt.encode(header, CLAIMS, key, algorithms=[alg]), seconds),
            *_rate(lambda: jwt.decode(token, key, algorithms=[alg]), seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="wall time per measurement (default 3 s)")
    parser.add_argument("--algs", default="ES256,RS256",
                        help="comma-separated JWS algorithms (default ES256,RS256)")
    args = parser.parse_args()
    print(f"{'alg':<6} {'sign/s':>9} {'sign ms':>8} {'verify/s':>9} {'verify ms':>9}")
    for alg in args.algs.split(","):
        sign_rate, sign_ms, verify_rate, verify_ms = _measure(alg, args.seconds)
        print(f"{alg:<6} {sign_rate:>9,.0f} {sign_ms:>8.3f} {verify_rate:>9,.0f} {verify_ms:>9.3f}")

if __name__ == "__main__":
    main()

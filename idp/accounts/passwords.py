"""Password hashing: argon2id for new hashes through libpass (``passlib``),
transparent re-hash when parameters change, bounded concurrency."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from passlib.context import CryptContext


class PasswordHasher:
    """Hash and verify human passwords.

    :param settings: the ``[passwords]`` settings table (argon2 time cost,
        memory cost in KiB, parallelism, max concurrent verifications).
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__time_cost=settings["argon2_time_cost"],
            argon2__memory_cost=settings["argon2_memory_cost"],
            argon2__parallelism=settings["argon2_parallelism"],
        )
        # Slow hashes are bounded per process so a burst of logins queues
        # instead of exhausting CPU and memory (DESIGN.md, Speed).
        self._slots = threading.BoundedSemaphore(settings["max_concurrent_verifications"])
        self._dummy = self._context.hash("dummy password for absent accounts")

    def slot(self) -> threading.BoundedSemaphore:
        """One of the process's slots for a slow hash (``with
        hasher.slot(): ...``): other slow verifications, such as a
        department's legacy bcrypt or PBKDF2 (idp.accounts.legacy), queue
        with argon2id's instead of exhausting CPU and memory."""
        return self._slots

    def hash(self, password: str) -> str:
        """Return a new argon2id hash (PHC string) of ``password``."""
        with self._slots:
            return self._context.hash(password)

    def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """Check ``password`` against ``stored``.

        When ``stored`` is None (no such account, or no password) a dummy hash
        is verified anyway so the answer takes the same time (no account
        enumeration by timing).

        :returns: ``(ok, new_hash)``; ``new_hash`` is set when the stored hash
            uses outdated parameters or scheme and should be replaced.
        """
        with self._slots:
            if stored is None:
                self._context.verify(password, self._dummy)
                return False, None
            try:
                return self._context.verify_and_update(password, stored)
            except ValueError:
                # Unrecognised hash format: treat as a failed check, not a crash.
                self._context.verify(password, self._dummy)
                return False, None

"""A background thread that each process runs once: started lazily by the
process that needs it, since a thread started before a server forks its
workers would not exist in them."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


class ProcessThread:
    """Run ``target`` in one daemon thread per process.

    :param target: the thread's function (it should never return).
    :param name: the thread's name.
    :param before_start: called in the process before its thread starts
        (under the lock), to renew what a fork copied from the parent.
    """

    def __init__(self, target: Callable[[], None], name: str,
                 before_start: Callable[[], None] | None = None) -> None:
        self._target = target
        self._name = name
        self._before_start = before_start
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def ensure_started(self) -> None:
        """Start this process's thread unless it runs already."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            if self._before_start is not None:
                self._before_start()
            self._thread = threading.Thread(target=self._target, name=self._name, daemon=True)
            self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for this process's thread to end
        (its target returned); nothing when it never started here."""
        thread = self._thread
        if thread is not None and self._pid == os.getpid():
            thread.join(timeout)

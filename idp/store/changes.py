"""Change counters of the embedded store's keys, shared by the processes of
one machine through a memory-mapped file, so that a process may keep what
it read and read it again only once the key has changed.

Each key falls in one of :data:`SLOTS` slots (a BLAKE2b of the key keyed
by a random secret kept at the end of the file, the same in every process
and unknown to clients, so nobody can pick keys that share a hot key's
slot and make every process read it again); every write of a key adds one
to its slot once the write has committed, while it still holds the store's
write lock (so no two writers count at once), and a reader takes the
slot's count *before* it reads the key. A value kept with the count read before it was read is
current as long as the slot still holds that count: a write that
committed after the read has counted by the time it returns. Keys sharing
a slot only cost each other extra reads.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import secrets
import struct
from collections.abc import Iterable

#: Slots in the file; 8 bytes each.
SLOTS = 65536
_COUNT = struct.Struct("<Q")
#: Bytes of the slots' hash key, stored after the slots.
_KEY_BYTES = 16
_SIZE = SLOTS * _COUNT.size + _KEY_BYTES


class ChangeCounters:
    """The counters kept in the file ``path`` (created, zero-filled, with
    a random slot key, at the first use; owner-only).

    :raises OSError: the file cannot be created or mapped.
    """

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Exclusive while sizing and keying: two processes starting on a
            # new file must not each pick a key of their own.
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size < _SIZE:
                # Extending with ftruncate reads as zeros, and never shrinks a
                # file another process has sized already.
                os.ftruncate(fd, _SIZE)
            # MAP_SHARED: every process mapping the file sees each count at once.
            self._map = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            key_at = SLOTS * _COUNT.size
            if not any(self._map[key_at:_SIZE]):
                self._map[key_at:_SIZE] = secrets.token_bytes(_KEY_BYTES)
            self._key = bytes(self._map[key_at:_SIZE])
        finally:
            # Unlocked explicitly: the map holds a duplicate of fd, which
            # would keep the lock past close.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def slot(self, key: str) -> int:
        """The slot of ``key`` (the store's full key, prefix included)."""
        digest = hashlib.blake2b(key.encode(), digest_size=8, key=self._key).digest()
        return int.from_bytes(digest, "little") % SLOTS

    def read(self, slot: int) -> int:
        """The count of ``slot``."""
        return _COUNT.unpack_from(self._map, slot * _COUNT.size)[0]

    def count(self, slots: Iterable[int]) -> None:
        """Add one to each of ``slots`` (once each). Call it only while
        holding the store's write lock, after the write has committed."""
        for slot in set(slots):
            offset = slot * _COUNT.size
            _COUNT.pack_into(self._map, offset, (_COUNT.unpack_from(self._map, offset)[0] + 1)
                             % (1 << 64))

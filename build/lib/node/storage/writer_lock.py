"""The turn to write a database that several processes share (``Database(shared=True)``).

The node process and its inbox fronts (see ``node.http.fronts``) write one database. Their
write transactions take turns through an ``flock`` on a file next to the database. When
:class:`node.storage.db.Database` takes the lock, waits for it and lets it go is explained
in :mod:`node.storage.db`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class WriterLock:
    """The turn to write a database shared by processes: an exclusive ``flock`` on
    ``<database>-writer`` (0600), which the kernel drops when its process dies."""

    def __init__(self, path: Path) -> None:
        self.path = Path(f"{path}-writer")
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def wait_free(self) -> None:
        """Block until no one holds the lock (taking it and letting go at once)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def acquire(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)

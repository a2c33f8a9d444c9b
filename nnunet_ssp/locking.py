"""One nnunet-ssp process at a time per output folder: an exclusive lock on `<folder>/.lock` while it works.

The lock is `fcntl.flock` on the open file, so the system releases it when the process ends, however it ends; the
file stays (removing it could let two processes lock two different files of the same name). It holds the pid of
the process that last took it, for the message of a refused one.
"""

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nnunet_ssp.errors import InputError

LOCK_FILE = ".lock"


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of `folder` (created if missing) for the block; InputError if another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise InputError(f"{folder} is in use by another nnunet-ssp process (pid {holder}); wait for it to end "
                             f"or stop it.") from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield

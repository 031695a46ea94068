"""One downloader at a time per file, across threads and processes, with no stale locks."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

_POLL_SECONDS = 0.1


@contextlib.contextmanager
def exclusive(lock_path: Path, while_waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold `lock_path` while the block runs; `while_waiting()` is called as we wait for another
    holder (it may raise to give up). The operating system drops the lock when its holder dies,
    so a crash leaves no stale lock."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while not _try_lock(fd):
                if while_waiting is not None:
                    while_waiting()
                time.sleep(_POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        if _is_current(fd, lock_path):
            break
        os.close(fd)  # its holder removed that lock file while we waited: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)  # while still holding it, so nobody locks a removed file
        _unlock(fd)
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        # Any other error: a file system without locks; go on, the hash check guards the file.
        return err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK)
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)


def _is_current(fd: int, lock_path: Path) -> bool:
    try:
        return os.stat(lock_path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False

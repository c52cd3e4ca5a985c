"""Files that appear whole or not at all.

``atomic_path(path)`` yields a temporary name in the destination's folder;
when the block ends normally the file there is renamed over ``path``
(``os.replace``: atomic on POSIX and Windows within one file system), and
when it raises the temporary file is removed.  A reader, a crash or a
Ctrl-C therefore never leaves a half-written output under the real name.
Every output of the package (MIDI and note files of the CLI, pictures,
exported models) is written through it; downloads keep their own resumable
``.part`` files (``mt3_infer.download``).

``file_lock(path)`` serializes the makers of one file across threads and
processes (downloads, exports).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, Iterator

__all__ = ["atomic_path", "file_lock"]


@contextlib.contextmanager
def atomic_path(path, prefix: str = ".mt3_tmp_") -> Iterator[str]:
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1] + ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# One lock per target, across threads (the file lock below covers processes).
_THREAD_LOCKS: Dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def file_lock(target: Path) -> Iterator[None]:
    """Exclusive lock on ``.<name>.lock`` beside target: threads and processes.

    The lock file is removed again on every exit path (while it is still
    held, so it never outlives the work).  A process that waited on a lock
    file that was removed meanwhile finds a different inode at the path and
    locks the new file instead, so two holders can never coexist.
    """
    lock_path = target.with_name(f".{target.name}.lock")
    key = str(lock_path.resolve() if lock_path.parent.exists() else lock_path)
    with _THREAD_LOCKS_GUARD:
        tlock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    with tlock:
        while True:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the folder was tidied away meanwhile
                continue
            if os.name == "nt":  # pragma: no cover - Windows
                import msvcrt

                while True:
                    try:
                        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                        break
                    except OSError:
                        time.sleep(0.1)
                break
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # its holder removed it: lock the current file
        try:
            yield
        finally:
            try:
                if os.name == "nt":  # pragma: no cover
                    import msvcrt

                    with contextlib.suppress(OSError):
                        os.lseek(fd, 0, os.SEEK_SET)
                        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
                else:
                    import fcntl

                    with contextlib.suppress(OSError):
                        os.unlink(lock_path)
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
                if os.name == "nt":  # pragma: no cover
                    with contextlib.suppress(OSError):
                        os.unlink(lock_path)

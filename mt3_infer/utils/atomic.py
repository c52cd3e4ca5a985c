"""Files that appear whole or not at all.

``atomic_path(path)`` yields a temporary name in the destination's folder;
when the block ends normally the file there is renamed over ``path``
(``os.replace``: atomic on POSIX and Windows within one file system), and
when it raises the temporary file is removed.  A reader, a crash or a
Ctrl-C therefore never leaves a half-written output under the real name.
Every output of the package (MIDI and note files of the CLI, pictures,
exported models) is written through it; downloads keep their own resumable
``.part`` files (``mt3_infer.download``).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator

__all__ = ["atomic_path"]


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

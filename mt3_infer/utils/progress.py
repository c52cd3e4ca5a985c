"""Progress on stderr: the one helper behind downloads, transcription and the CLI.

``progress=`` arguments follow one rule everywhere (:func:`resolve`): a
callable is called (and nothing is drawn), ``False`` draws nothing, and
``None`` and ``True`` map to one of three levels the caller names: "off",
"tty" (a bar when stderr is a terminal) or "on" (a bar always).  Downloads:
None -> "tty", True -> "on" (a forced bar); transcription: None -> "off" (as
mt3-infer 0.2.0), True -> "tty".  The bar is tqdm's when tqdm is installed,
else one line redrawn in place at most every 0.2 s.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional, Tuple

__all__ = ["Bar", "resolve", "status", "stderr_is_tty"]


def stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def status(msg: str, quiet: Optional[bool]) -> None:
    """One status line on stderr (downloads, exports): ``quiet`` None prints
    it only when stderr is a terminal."""
    if quiet is None:
        quiet = not stderr_is_tty()
    if not quiet:
        print(msg, file=sys.stderr)


def resolve(progress: Any, *, none: str, true: str, what: str) -> Tuple[bool, Optional[Callable]]:
    """``(draw a bar, callback)`` for a ``progress=`` argument; ``none`` and
    ``true`` are the levels ("off", "tty", "on") of None and True; ``what``
    describes the callable's signature for the TypeError of anything else."""
    if callable(progress) and not isinstance(progress, bool):
        return False, progress
    if progress is None or progress is True:
        level = none if progress is None else true
    elif progress is False:
        level = "off"
    else:
        raise TypeError(f"progress must be None, True/False or a callable({what}), got {progress!r}")
    if level not in ("off", "tty", "on"):
        raise ValueError(f"unknown progress level {level!r}")
    return level == "on" or (level == "tty" and stderr_is_tty()), None


class Bar:
    """A bar of ``total`` (None: unknown) on stderr.  ``line(done, total,
    seconds)`` renders the plain-text fallback; ``tqdm`` holds the keywords
    of the tqdm bar (unit, unit_scale, ...)."""

    def __init__(self, total: Optional[int], desc: str, line: Callable[[int, Optional[int], float], str], *,
                 leave: bool = False, **tqdm_kw: Any):
        self.total = total
        self.done = 0
        self._line = line
        self._last = 0.0
        self._t0 = time.monotonic()
        self._drawn = False
        self._tqdm = None
        try:
            from tqdm import tqdm  # optional dependency

            self._tqdm = tqdm(total=total, desc=desc, file=sys.stderr, leave=leave, **tqdm_kw)
        except Exception:
            self._tqdm = None

    def update_to(self, done: int, total: Optional[int] = None, postfix: Optional[dict] = None,
                  force: bool = False) -> None:
        if total is not None and total != self.total:
            self.total = total
            if self._tqdm is not None:
                self._tqdm.reset(total=total)
                self._tqdm.update(done)
        if self._tqdm is not None:
            if done != self._tqdm.n:
                self._tqdm.update(done - self._tqdm.n)
            if postfix:
                self._tqdm.set_postfix(postfix, refresh=False)
            self.done = done
            return
        self.done = done
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        sys.stderr.write("\r" + self._line(done, self.total, now - self._t0))
        sys.stderr.flush()
        self._drawn = True

    def describe(self, text: str) -> None:
        """A new description (tqdm's), or a redraw of the plain line, whose
        renderer shows what the caller holds."""
        if self._tqdm is not None:
            self._tqdm.set_description(text)
        else:
            self.update_to(self.done, force=True)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        elif self._drawn:
            self.update_to(self.done, force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False

"""Leaks of the C core in LeakSanitizer reports (`make asan`).

    python3 tools/asan/leaks.py REPORT... [--ours PATTERN ...]

`make asan` runs the torch-free tests with LeakSanitizer on and its reports
written to files (LSAN_OPTIONS log_path, exit code 0).  CPython, numpy and
OpenSSL keep interpreter-lifetime allocations until exit (interned strings,
type objects, ufunc tables): LSan lists them as leaks, thousands per run, and
an LSan suppression cannot tell them apart from ours, because every call into
the C core passes through libpython frames.  So instead of suppressions,
this reads each leak's allocation stack and counts it as the C core's when
the *allocating* frames (the first frames above malloc/calloc/realloc) lie in
our code: the `_core` extension or a source file under csrc/.  Any such leak
is printed with its stack and makes the exit status 1; the others are
counted by owner and otherwise ignored.
"""
import argparse
import re
import sys
from collections import Counter

ALLOC = re.compile(r"__interceptor_(malloc|calloc|realloc|posix_memalign|aligned_alloc)|operator new")
FRAME = re.compile(r"^\s*#(\d+) 0x[0-9a-f]+ (?:in (\S+) )?(.*)$")


def leaks(text):
    """Yield (header, [frame lines]) for every leak record of a report."""
    head, frames = None, []
    for line in text.splitlines():
        if line.startswith(("Direct leak", "Indirect leak")):
            if head:
                yield head, frames
            head, frames = line.strip(), []
        elif head is not None:
            if FRAME.match(line):
                frames.append(line.strip())
            elif not line.strip() and frames:
                yield head, frames
                head, frames = None, []
    if head:
        yield head, frames


def owner(frames, ours, depth=3):
    """'ours' when one of the first `depth` frames above the allocator is in our code."""
    above = [f for f in frames if not ALLOC.search(f)]
    for f in above[:depth]:
        if any(p in f for p in ours):
            return "ours"
    for f in above:
        for lib in ("libpython", "_multiarray_umath", "libcrypto", "libsoxr", "libkissfft"):
            if lib in f:
                return lib
    return "other"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="*")
    ap.add_argument("--ours", action="append", default=None,
                    help="substring of a frame in our code (default: _core.cpython, /csrc/)")
    a = ap.parse_args(argv)
    ours = a.ours or ["_core.cpython", "/csrc/"]
    counts, bad = Counter(), []
    for path in a.reports:
        with open(path, errors="replace") as fh:
            for head, frames in leaks(fh.read()):
                who = owner(frames, ours)
                counts[who] += 1
                if who == "ours":
                    bad.append((path, head, frames))
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    print(f"LeakSanitizer: {sum(counts.values())} leak records in {len(a.reports)} report(s) ({summary}); "
          f"{len(bad)} from the C core")
    for path, head, frames in bad:
        print(f"\n{path}: {head}")
        print("\n".join("    " + f for f in frames[:12]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

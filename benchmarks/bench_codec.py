"""Token decoding + MIDI writing: native core vs the plain-Python reference of the
tests (tests/ref_decode.py, tests/ref_midi.py), on realistic token streams.

    .venv/bin/python benchmarks/bench_codec.py [--segments 10000] [--schemes mt3_pytorch,mr_mt3,yourmt3]

Streams are built from a synthetic polyphonic score (about 5 notes per second:
40 % piano, 15 % bass, 25 % strings, 20 % drums, so auto_filter keeps everything) encoded the way the models were trained to emit
them (tie sections, absolute shifts, EOS then PAD).  Each timing is the best of
--repeat runs (the Python reference runs once).  Prints seconds and the ratio.
"""
import argparse
import bisect
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import ref_decode as R  # noqa: E402
import ref_midi as RM  # noqa: E402

from mt3_infer import codec  # noqa: E402


def score(n_steps, rng, density=0.05):
    """(on, off, pitch, program, is_drum) in 10-ms steps; no same-key overlaps."""
    notes, free_at = [], {}
    for step in np.flatnonzero(rng.random(n_steps) < density):
        kind = rng.choice(4, p=[0.4, 0.15, 0.25, 0.2])  # piano, bass, strings, drums
        if kind == 3:
            notes.append((int(step), int(step) + 1, int(rng.choice([36, 38, 42, 46])), 0, True))
            continue
        prog = (0, 33, 48)[kind]
        pitch = int(rng.integers(36, 84))
        if free_at.get((pitch, prog), -1) > step:
            continue
        off = int(step + rng.integers(5, 150))
        free_at[(pitch, prog)] = off
        notes.append((int(step), off, pitch, prog, False))
    return notes


def bucket(notes, starts):
    """Per segment: onsets, offsets (not on the boundary) and tied notes."""
    n = len(starts)
    ons = [[] for _ in range(n)]
    offs = [[] for _ in range(n)]
    ties = [[] for _ in range(n)]
    for note in notes:
        on, off = note[0], note[1]
        k0 = bisect.bisect_right(starts, on) - 1
        ons[k0].append(note)
        if note[4]:
            continue
        k1 = min(n - 1, bisect.bisect_right(starts, off) - 1)
        if off != starts[k1]:
            offs[k1].append(note)
        for k in range(k0 + 1, k1 + 1):
            if starts[k] < off:
                ties[k].append(note)
    return ons, offs, ties


def mt3_tokens(notes, starts):
    enc = lambda name, v=0: R.encode_event("mt3", name, v)  # noqa: E731
    ons, offs, ties = bucket(notes, starts)
    rows = []
    for k, s0 in enumerate(starts):
        row, prog = [], None
        for n in sorted(ties[k], key=lambda n: (n[3], n[2])):
            if n[3] != prog:
                row.append(enc("program", n[3]))
                prog = n[3]
            row.append(enc("pitch", n[2]))
        row.append(enc("tie"))
        ev = [(n[1], 0, n) for n in offs[k]] + [(n[0], 1, n) for n in ons[k]]
        ev.sort(key=lambda e: (e[0], e[1], e[2][3], e[2][2]))
        t, vel = s0, None
        for step, v, n in ev:
            if step != t:
                row.append(enc("shift", step - s0))
                t = step
            if v != vel:
                row.append(enc("velocity", v))
                vel = v
            if n[4]:
                row.append(enc("drum", n[2]))
            else:
                row += [enc("program", n[3]), enc("pitch", n[2])]
        row.append(1)
        rows.append(row)
    width = max(len(r) for r in rows)
    return np.array([r + [0] * (width - len(r)) for r in rows], np.int64)


def ymt3_tokens(notes, starts):
    enc = lambda name, v=0: R.encode_event("yourmt3", name, v)  # noqa: E731
    chan = lambda n: 12 if n[4] else R.YMT3_CHANNEL_OF[n[3]]  # noqa: E731
    ons, offs, ties = bucket(notes, starts)
    out = []
    for k, s0 in enumerate(starts):
        rows = []
        for c in range(13):
            row, prog = [], None
            for n in sorted((n for n in ties[k] if chan(n) == c), key=lambda n: (n[3], n[2])):
                if n[3] != prog:
                    row.append(enc("program", n[3]))
                    prog = n[3]
                row.append(enc("pitch", n[2]))
            row.append(enc("tie"))
            ev = [(n[1], 0, n) for n in offs[k] if chan(n) == c]
            ev += [(n[0], 1, n) for n in ons[k] if chan(n) == c]
            ev.sort(key=lambda e: (e[0], e[1], e[2][3], e[2][2]))
            t, vel, prog = s0, None, None
            for step, v, n in ev:
                if step != t:
                    row.append(enc("shift", step - s0))
                    t = step
                if n[4]:
                    row.append(enc("drum", n[2]))
                    continue
                if n[3] != prog:
                    row.append(enc("program", n[3]))
                    prog = n[3]
                if v != vel:
                    row.append(enc("velocity", v))
                    vel = v
                row.append(enc("pitch", n[2]))
            row.append(1)
            rows.append(row[:256])
        out.append(rows)
    width = max(len(r) for rows in out for r in rows)
    arr = np.zeros((len(out), 13, width), np.int64)
    for i, rows in enumerate(out):
        for c, r in enumerate(rows):
            arr[i, c, : len(r)] = r
    return arr


def best(fn, repeat):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        t.append(time.perf_counter() - t0)
    return min(t), res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=10000)
    ap.add_argument("--schemes", default="mt3_pytorch,mr_mt3,yourmt3")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.segments
    print(f"segments: {n}")
    for scheme in args.schemes.split(","):
        if scheme == "yourmt3":
            starts = [round(s * 100) for s in codec.default_segment_starts("yourmt3", n)]
            notes = score(starts[-1] + 204 - 150, rng)  # offsets stay inside the last segment
            toks = ymt3_tokens(notes, starts)
        else:
            starts = [round(s * 100) for s in codec.default_segment_starts("mt3_pytorch", n)]
            notes = score(starts[-1] + 204, rng)
            toks = mt3_tokens(notes, starts)
        tok_list = toks.tolist()
        style = RM.STYLE_OF_SCHEME[scheme]

        t_c, (midi_c, notes_c) = best(lambda: codec.tokens_to_midi(toks, scheme), args.repeat)
        t0 = time.perf_counter()
        ref_notes = R.decode(tok_list, scheme)
        t_dec = time.perf_counter() - t0
        midi_py = RM.midi_bytes(ref_notes, style)
        t_py = time.perf_counter() - t0
        same = midi_py == midi_c
        print(f"{scheme:12s} tokens {toks.shape} notes {len(notes_c):7d} midi {len(midi_c):8d} B  "
              f"C {t_c * 1e3:8.1f} ms  Python {t_py:7.2f} s (decode {t_dec:.2f} s)  "
              f"ratio {t_py / t_c:7.1f}x  identical={same}")


if __name__ == "__main__":
    main()

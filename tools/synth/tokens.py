"""Exact notes -> MT3 token streams, one per 2.048 s segment.

The inverse of the C decoder's ``mt3_pytorch`` scheme (specs/mt3-family.md
§5-6, Magenta's encoding with ties):

* segment i starts at step ``s_i`` = its start time floored to 10 ms (the
  package's ``default_segment_starts("mt3_pytorch", n)``) and owns the events
  at steps ``s_i <= q < s_{i+1}``;
* it opens with the tie section: ``program, pitch`` of every pitched note
  sounding across ``s_i`` (sorted by program, pitch), then ``tie``;
* then, per step in order, one ``shift`` (steps from ``s_i``, absolute) and
  the events of that step: note-offs first, then onsets, each ordered by
  (is_drum, program, pitch); a pitched event is ``program, velocity, pitch``,
  a drum hit ``velocity, drum``; a program or velocity token equal to the
  last one emitted in the segment is left out;
* EOS ends the row.

Velocity has one bin (MT3's vocabulary): any onset is velocity bin 1.
Raw ids come from the C codec table (``_core.vocab_encode``), so this file
holds no vocabulary constants of its own.
"""
from __future__ import annotations

from typing import List

import numpy as np

from mt3_infer import _core
from mt3_infer.codec import default_segment_starts

EOS, PAD = 1, 0
SHIFT_MAX = 1000


def _id(kind: str, value: int) -> int:
    i = _core.vocab_encode("mt3", kind, int(value))
    if i < 0:
        raise ValueError(f"{kind} {value} is not in the MT3 vocabulary")
    return i


def segment_steps(n_segments: int) -> np.ndarray:
    starts = default_segment_starts("mt3_pytorch", n_segments)
    return np.round(np.asarray(starts) * 100).astype(np.int64)


def encode_segments(notes: np.ndarray, n_segments: int) -> List[np.ndarray]:
    """Token rows (int64 raw ids, EOS-terminated, no start token) for the
    ``n_segments`` segments of a clip holding ``notes`` (NOTE_DTYPE: times on
    the 10 ms grid; drums as 10 ms notes)."""
    starts = segment_steps(n_segments)
    bounds = np.append(starts[1:], np.iinfo(np.int64).max)
    on = np.round(notes["onset"] * 100).astype(np.int64)
    off = np.round(notes["offset"] * 100).astype(np.int64)
    drum = notes["is_drum"].astype(bool)
    # (step, kind 0 = off / 1 = on, is_drum, program, pitch)
    events = []
    for k in range(len(notes)):
        p, prog = int(notes["pitch"][k]), int(notes["program"][k])
        events.append((int(on[k]), 1, bool(drum[k]), prog if not drum[k] else 0, p))
        if not drum[k]:
            events.append((int(off[k]), 0, False, prog, p))
    events.sort()
    rows = []
    for i in range(n_segments):
        s, e = int(starts[i]), int(bounds[i])
        toks: List[int] = []
        state = {"program": None, "velocity": None}

        def put(kind, value):
            if kind in state:
                if state[kind] == value:
                    return
                state[kind] = value
            toks.append(_id(kind, value))

        tied = sorted((int(notes["program"][k]), int(notes["pitch"][k])) for k in range(len(notes))
                      if not drum[k] and on[k] < s <= off[k])
        # a note ending at step s_i has its off event in this segment, so it is
        # still sounding at the segment start and belongs to the tie section
        for prog, p in tied:
            put("program", prog)
            put("pitch", p)
        toks.append(_id("tie", 0))
        last_step = None
        for (q, kind, is_drum, prog, p) in events:
            if q < s or q >= e:
                continue
            if q != last_step:
                rel = q - s
                while rel > SHIFT_MAX:
                    toks.append(_id("shift", SHIFT_MAX))
                    rel -= SHIFT_MAX
                toks.append(_id("shift", rel))
                last_step = q
            if is_drum:
                put("velocity", 1)
                put("drum", p)
            else:
                put("program", prog)
                put("velocity", kind)
                put("pitch", p)
        toks.append(EOS)
        rows.append(np.asarray(toks, np.int64))
    return rows


def pad_rows(rows: List[np.ndarray], length: int = None) -> np.ndarray:
    n = max((len(r) for r in rows), default=1) if length is None else length
    out = np.full((len(rows), n), PAD, np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r[:n]
    return out

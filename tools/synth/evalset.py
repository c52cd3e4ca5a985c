"""Held-out evaluation clips and note-level scores (mir_eval).

Evaluation clips use seeds from ``EVAL_BASE`` on (training sets use
``seed * 10_000_000 + k`` with small data seeds), so neither their note
material nor their rendering choices were seen in training.  Each set forces
its content: one solo set per program group of ``material.GROUPS`` (drums
included) and an ``ensemble`` set of 2-4 instruments; every clip is rendered
once per soundfont, so scores split by soundfont compare like with like.
"""
from __future__ import annotations

from typing import Dict, Iterator, Tuple

import numpy as np

from synth import material

EVAL_BASE = 9_000_000_000
SETS = tuple(material.GROUPS) + ("ensemble",)


def eval_seed(set_name: str, k: int) -> int:
    return EVAL_BASE + SETS.index(set_name) * 100_000 + int(k)


def eval_clip(set_name: str, k: int, duration: float = 8.0):
    seed = eval_seed(set_name, k)
    if set_name == "ensemble":
        return material.make_clip(seed, duration=duration, scenario="ensemble")
    if set_name == "piano":
        return material.make_clip(seed, duration=duration, scenario="solo_piano")
    return material.make_clip(seed, duration=duration, scenario="solo", group=set_name)


def _pitch_hz(notes: np.ndarray) -> np.ndarray:
    # drums are scored apart from pitched notes: their keys sit above MIDI 127
    midi = notes["pitch"].astype(np.float64) + 128.0 * notes["is_drum"].astype(np.float64)
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def scores(ref: np.ndarray, est: np.ndarray, onset_tol: float = 0.05) -> Dict[str, float]:
    """Program-agnostic note F1 (mir_eval.transcription):

    * ``onset_f1``: onset within ``onset_tol`` and the same pitch (drum hits
      match drum hits of the same key, never pitched notes);
    * ``onoff_f1``: pitched notes only, also offset within 20 % of the
      reference duration or 50 ms, whichever is larger (mir_eval's default).

    An empty reference and an empty estimate score 1.0 (nothing to find,
    nothing invented); one empty side scores 0.0.
    """
    import mir_eval

    def f1(r, e, offset):
        if len(r) == 0 and len(e) == 0:
            return 1.0
        if len(r) == 0 or len(e) == 0:
            return 0.0
        ri = np.stack([r["onset"], np.maximum(r["offset"], r["onset"] + 1e-3)], axis=1)
        ei = np.stack([e["onset"], np.maximum(e["offset"], e["onset"] + 1e-3)], axis=1)
        _, _, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ri, _pitch_hz(r), ei, _pitch_hz(e), onset_tolerance=onset_tol,
            offset_ratio=0.2 if offset else None, offset_min_tolerance=0.05)
        return float(f)

    pr, pe = ref[~ref["is_drum"]], est[~est["is_drum"]]
    return {"onset_f1": f1(ref, est, False), "onoff_f1": f1(pr, pe, True) if len(pr) else float("nan")}


def iter_clips(n_per_set: int, sets=SETS) -> Iterator[Tuple[str, int, np.ndarray, dict]]:
    for s in sets:
        for k in range(n_per_set):
            notes, info = eval_clip(s, k)
            yield s, k, notes, info

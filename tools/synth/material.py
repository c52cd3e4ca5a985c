"""Musical random note material on the MT3 codec's 10 ms grid.

A clip is a few instrument tracks, each a sequence of sections; a section has
its own tempo (so tempo changes inside a clip), key, dynamics and pattern:
scale runs, block chords, arpeggios, repeated notes, melodies with rests,
sustained pads, or (channel 10) a drum groove.  Every time is a multiple of
10 ms, durations are 40 ms-3 s, notes of one (program, pitch) never overlap,
and total polyphony is capped at 8 pitched voices.

Deterministic: ``make_clip(seed)`` depends only on ``seed`` (NumPy PCG64).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from mt3_infer import codec

STEP = 0.01  # codec time resolution (s)
MIN_DUR_STEPS = 4  # 40 ms
MAX_DUR_STEPS = 300  # 3 s
MAX_POLY = 8

# Program groups (GM programs, 0-based) with playable registers.
GROUPS: Dict[str, dict] = {
    "piano": {"programs": (0, 1, 2), "range": (21, 108), "poly": 8},
    "electric_piano": {"programs": (4, 5), "range": (28, 100), "poly": 6},
    "guitar": {"programs": (24, 25, 26, 27, 29), "range": (40, 86), "poly": 6},
    "bass": {"programs": (32, 33, 34, 35, 38), "range": (28, 60), "poly": 1},
    "strings": {"programs": (40, 41, 42, 48, 49), "range": (36, 96), "poly": 4},
    "organ": {"programs": (16, 17, 18, 19), "range": (36, 96), "poly": 6},
    "brass": {"programs": (56, 57, 58, 60, 61), "range": (40, 84), "poly": 3},
    "drums": {"programs": (0,), "range": (35, 81), "poly": 4},
}
PITCHED_GROUPS = tuple(g for g in GROUPS if g != "drums")

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "blues": (0, 3, 5, 6, 7, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "chromatic": tuple(range(12)),
}
CHORDS = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 11), (0, 3, 7, 10), (0, 4, 7, 10), (0, 3, 6),
          (0, 5, 7), (0, 4, 7, 14), (0, 7, 12), (0, 4, 7, 12, 16))
# GM drum keys by role.
KICK, SNARE, HATS, TOMS, CYMBALS, PERC = (35, 36), (38, 40, 37, 39), (42, 44, 46), \
    (41, 43, 45, 47, 48, 50), (49, 51, 52, 55, 57, 59), (54, 56, 60, 61, 62, 63, 64, 69, 70, 75, 76)

@dataclass
class Note:
    on: int  # steps of 10 ms
    off: int
    pitch: int
    velocity: int
    program: int
    is_drum: bool


def scale_pitches(rng, lo: int, hi: int) -> np.ndarray:
    root = int(rng.integers(0, 12))
    name = list(SCALES)[int(rng.choice(len(SCALES), p=[.24, .2, .1, .18, .1, .08, .1]))]
    degs = SCALES[name]
    return np.array([p for p in range(lo, hi + 1) if (p - root) % 12 in degs])


def _sections(rng, dur_steps: int) -> List[Tuple[int, int, float]]:
    """(start, end, beat_steps) spans covering the clip: tempo changes between spans."""
    out, t = [], 0
    beat = float(rng.uniform(25, 90))  # 67-240 bpm
    while t < dur_steps:
        length = int(rng.uniform(150, 500))
        out.append((t, min(dur_steps, t + length), beat))
        t += length
        if rng.random() < 0.6:  # tempo change, sometimes gradual-looking
            beat = float(np.clip(beat * rng.uniform(0.7, 1.4), 20, 100))
    return out


def _jitter(rng, t: float, amount: float) -> int:
    return int(round(t + rng.normal(0, amount)))


def _pitched_section(rng, grp: dict, program: int, start: int, end: int, beat: float) -> List[Note]:
    lo, hi = grp["range"]
    # Narrow to a random sub-register so melodies sit somewhere plausible.
    span = int(rng.integers(12, max(13, hi - lo + 1)))
    lo2 = int(rng.integers(lo, hi - span + 2))
    hi2 = min(hi, lo2 + span)
    pitches = scale_pitches(rng, lo2, hi2)
    if len(pitches) == 0:
        pitches = np.arange(lo2, hi2 + 1)
    poly = grp["poly"]
    kinds = ["scale", "melody", "repeated", "sustain"] + (["chords", "arpeggio"] if poly > 1 else [])
    kind = kinds[int(rng.integers(len(kinds)))]
    vel0 = int(rng.integers(35, 121))
    sub = float(rng.choice([1, 2, 3, 4])) if kind != "sustain" else float(rng.choice([0.25, 0.5, 1]))
    ioi = beat / sub
    legato = float(rng.uniform(0.3, 1.05))
    human = float(rng.uniform(0, 1.5))
    notes: List[Note] = []

    def vel():
        return int(np.clip(vel0 + rng.normal(0, 10), 1, 127))

    def add(on, dur, pitch, v=None):
        dur = int(np.clip(dur, MIN_DUR_STEPS, MAX_DUR_STEPS))
        if on < start or on >= end:
            return
        notes.append(Note(on, on + dur, int(pitch), v if v is not None else vel(), program, False))

    t = float(start) + float(rng.uniform(0, ioi))
    idx = int(rng.integers(len(pitches)))
    direction = 1 if rng.random() < 0.5 else -1
    while t < end:
        on = _jitter(rng, t, human)
        if kind == "scale":
            add(on, ioi * legato, pitches[idx])
            idx += direction
            if idx < 0 or idx >= len(pitches):
                direction = -direction
                idx = min(max(idx + 2 * direction, 0), len(pitches) - 1)
            t += ioi
        elif kind == "melody":
            if rng.random() < 0.2:  # rest
                t += ioi * float(rng.choice([1, 2, 3]))
                continue
            step = int(rng.choice([-4, -3, -2, -1, -1, 0, 1, 1, 2, 3, 4, 7, -7]))
            idx = int(np.clip(idx + step, 0, len(pitches) - 1))
            length = ioi * float(rng.choice([0.5, 1, 1, 1.5, 2, 3]))
            add(on, length * legato, pitches[idx])
            t += length
        elif kind == "repeated":
            if rng.random() < 0.25:
                idx = int(rng.integers(len(pitches)))
            add(on, ioi * legato, pitches[idx])
            t += ioi
        elif kind == "sustain":
            n = int(rng.integers(1, poly + 1))
            base = int(rng.integers(len(pitches)))
            chosen = sorted({int(pitches[min(base + 2 * k, len(pitches) - 1)]) for k in range(n)})
            dur = ioi * float(rng.uniform(0.6, 1.0))
            for p in chosen:
                add(_jitter(rng, t, human), dur, p)
            t += ioi
        else:  # chords / arpeggio
            root = int(rng.choice(pitches[: max(1, len(pitches) - 7)]))
            shape = CHORDS[int(rng.integers(len(CHORDS)))]
            chord = [root + iv for iv in shape if root + iv <= hi][:poly]
            if kind == "chords":
                length = ioi * float(rng.choice([1, 2, 2, 4]))
                v = vel()
                for p in chord:
                    add(_jitter(rng, t, human), length * legato, p, int(np.clip(v + rng.normal(0, 5), 1, 127)))
                t += length
            else:
                pattern = chord + chord[-2:0:-1] if rng.random() < 0.5 else chord
                hold = rng.random() < 0.4  # let arpeggio notes ring
                for k, p in enumerate(pattern):
                    on_k = _jitter(rng, t, human)
                    add(on_k, (ioi * (len(pattern) - k)) if hold else ioi * legato, p)
                    t += ioi
                    if t >= end:
                        break
    return notes


def _drum_section(rng, start: int, end: int, beat: float) -> List[Note]:
    notes: List[Note] = []
    sixteenth = beat / 4
    kick = int(rng.choice(KICK)); snare = int(rng.choice(SNARE[:2])); hat = int(rng.choice(HATS))
    p_kick = rng.uniform(0.1, 0.4, 16); p_kick[[0, 8]] = 0.95
    p_snare = rng.uniform(0.0, 0.15, 16); p_snare[[4, 12]] = 0.95
    p_hat = np.full(16, rng.uniform(0.3, 0.95)); p_hat[::2] = np.maximum(p_hat[::2], 0.8)
    human = float(rng.uniform(0, 1.0))
    vel0 = int(rng.integers(50, 121))
    t, k = float(start), 0
    while t < end:
        pos = k % 16
        hits = []
        if rng.random() < p_kick[pos]:
            hits.append(kick)
        if rng.random() < p_snare[pos]:
            hits.append(snare)
        if rng.random() < p_hat[pos]:
            hits.append(hat)
        if rng.random() < 0.04:
            hits.append(int(rng.choice(TOMS)))
        if rng.random() < (0.5 if pos == 0 and (k // 16) % 4 == 0 else 0.02):
            hits.append(int(rng.choice(CYMBALS)))
        if rng.random() < 0.04:
            hits.append(int(rng.choice(PERC)))
        for p in hits:
            on = _jitter(rng, t, human)
            if start <= on < end:
                v = int(np.clip(vel0 + rng.normal(0, 15), 1, 127))
                notes.append(Note(on, on + 1, p, v, 0, True))
        t += sixteenth
        k += 1
    return notes


def _track(rng, group: str, dur_steps: int, sections=None) -> List[Note]:
    grp = GROUPS[group]
    program = int(rng.choice(grp["programs"]))
    sections = sections or _sections(rng, dur_steps)
    notes: List[Note] = []
    for (s, e, beat) in sections:
        if group != "drums" and rng.random() < 0.12:
            continue  # the instrument rests for a section
        notes += _drum_section(rng, s, e, beat) if group == "drums" else \
            _pitched_section(rng, grp, program, s, e, beat)
    return notes


def _clean(notes: List[Note], dur_steps: int) -> List[Note]:
    """Clip to the clip, remove same-key overlaps, cap polyphony at MAX_POLY."""
    out: List[Note] = []
    last: Dict[Tuple[int, int, bool], Note] = {}
    for n in sorted(notes, key=lambda n: (n.on, n.is_drum, n.program, n.pitch)):
        if n.on < 0 or n.on >= dur_steps - MIN_DUR_STEPS:
            continue
        if not n.is_drum:
            n.off = min(n.off, dur_steps)
        key = (n.program, n.pitch, n.is_drum)
        prev = last.get(key)
        if prev is not None:
            if n.on <= prev.on or (not n.is_drum and n.on - prev.on < MIN_DUR_STEPS):
                continue
            if n.is_drum and n.on - prev.on < 3:
                continue  # flams closer than 30 ms are one hit
            if not n.is_drum and prev.off > n.on:
                prev.off = n.on
        if not n.is_drum and n.off - n.on < MIN_DUR_STEPS:
            continue
        last[key] = n
        out.append(n)
    # polyphony cap (pitched notes sounding at each onset)
    capped: List[Note] = []
    for n in out:
        if not n.is_drum:
            sounding = sum(1 for m in capped if not m.is_drum and m.on <= n.on < m.off)
            if sounding >= MAX_POLY:
                continue
        capped.append(n)
    return capped


SCENARIOS = ("solo_piano", "solo", "ensemble")


def make_clip(seed: int, duration: float = None, scenario: str = None, group: str = None):
    """Notes of one clip as a structured array (times in seconds on the 10 ms
    grid) plus a description dict.  ``scenario``/``group`` force the content
    (the evaluation sets use this); otherwise they are drawn from the seed."""
    rng = np.random.default_rng(np.random.SeedSequence([20261201, int(seed)]))
    if duration is None:
        duration = float(rng.uniform(6.0, 14.0))
    dur_steps = int(round(duration / STEP))
    if scenario is None:
        scenario = SCENARIOS[int(rng.choice(3, p=[0.3, 0.35, 0.35]))]
    if scenario == "solo_piano":
        groups = ["piano"]
    elif scenario == "solo":
        groups = [group or list(GROUPS)[int(rng.integers(len(GROUPS)))]]
    else:
        k = int(rng.integers(2, 5))
        pool = [g for g in PITCHED_GROUPS]
        groups = list(rng.choice(pool, size=min(k, len(pool)), replace=False))
        if rng.random() < 0.5:
            groups = groups[:-1] + ["drums"]
    sections = _sections(rng, dur_steps) if rng.random() < 0.7 else None  # shared tempo map
    notes: List[Note] = []
    for g in groups:  # two tracks may share a program: _clean resolves their overlaps
        notes += _track(rng, g, dur_steps, sections)
    notes = _clean(notes, dur_steps)
    arr = notes_array(notes)
    info = {"seed": int(seed), "duration": dur_steps * STEP, "scenario": scenario,
            "groups": [str(g) for g in groups]}
    return arr, info


NOTE_DTYPE = codec.NOTE_DTYPE  # the package's note array (decode_tokens / notes_to_midi)


def notes_array(notes: List[Note]) -> np.ndarray:
    arr = np.zeros(len(notes), NOTE_DTYPE)
    for i, n in enumerate(sorted(notes, key=lambda n: (n.on, n.is_drum, n.program, n.pitch))):
        arr[i] = (n.on * STEP, (n.off if not n.is_drum else n.on + 1) * STEP, n.pitch, n.velocity,
                  n.program, n.is_drum)
    return arr

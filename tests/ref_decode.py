"""Plain-Python reference of token -> note decoding, written from the specs
(specs/mt3-family.md §4.2, §5, §6; specs/magenta-t5x.md §5.6, §5.7, §6;
specs/yourmt3.md §6, §7), not from the C code.  Deliberately simple: dicts in
insertion order, lists, Python sorts.

Notes are tuples (onset, offset, pitch, velocity, program, is_drum).
"""
from __future__ import annotations

import math

# ---------------------------------------------------------------- vocabularies
MT3_RANGES = [  # (event, first raw id, count)  -- mt3-family §5
    ("pad", 0, 1), ("eos", 1, 1), ("unk", 2, 1),
    ("shift", 3, 1001), ("pitch", 1004, 128), ("velocity", 1132, 2), ("tie", 1134, 1),
    ("program", 1135, 128), ("drum", 1263, 128), ("extra", 1391, 100), ("unused", 1491, 45),
]
YMT3_RANGES = [  # yourmt3 §6.1
    ("pad", 0, 1), ("eos", 1, 1), ("unk", 2, 1),
    ("shift", 3, 206), ("pitch", 209, 128), ("velocity", 337, 2), ("tie", 339, 1),
    ("program", 340, 128), ("drum", 468, 128),
]
MAGENTA_PIANO_RANGES = [  # magenta-t5x §6.1 (ismir2021, 127 velocity bins)
    ("pad", 0, 1), ("eos", 1, 1), ("unk", 2, 1),
    ("shift", 3, 1001), ("pitch", 1004, 128), ("velocity", 1132, 128), ("tie", 1260, 1),
    ("program", 1261, 128), ("drum", 1389, 128), ("extra", 1517, 100), ("unused", 1617, 47),
]
VOCABS = {"mt3": MT3_RANGES, "yourmt3": YMT3_RANGES, "magenta_piano": MAGENTA_PIANO_RANGES}
_NOT_CODEC = ("pad", "eos", "unk", "extra", "unused")


def codec_classes(vocab):
    """Magenta codec classes: the event ids between the 3 specials and the extra ids."""
    return sum(c for n, _, c in VOCABS[vocab] if n not in _NOT_CODEC)


def velocity_bins(vocab):
    return next(c for n, _, c in VOCABS[vocab] if n == "velocity") - 1


def decode_id(vocab, raw):
    for name, first, count in VOCABS[vocab]:
        if first <= raw < first + count:
            return name, raw - first
    return "out_of_range", 0


def encode_event(vocab, name, value):
    for n, first, count in VOCABS[vocab]:
        if n == name:
            return first + value if 0 <= value < count else -1
    return -1


def magenta_decode(codec_id, vocab="mt3"):
    """Magenta codec id (raw - 3) -> event; None outside 0..classes-1 (invalid
    event: 0..1387 for "mt3", 0..1513 for "magenta_piano")."""
    if codec_id < 0 or codec_id >= codec_classes(vocab):
        return None
    return decode_id(vocab, codec_id + 3)


# --------------------------------------------------------------- start times
def start_mt3_pytorch(i):
    t = (256 * i) / 125.0
    return t - t % 0.01


def start_mr_mt3(i):
    return (256 * i) / 125.0


def start_yourmt3(i):
    return 32767 * i / 16000


def start_magenta_piano(i):
    t = (512 * i) / 125.0  # magenta-t5x §5.2: input_times[0] of a 512-frame segment
    return t - t % 0.01


DEFAULT_START = {"mt3_pytorch": start_mt3_pytorch, "mr_mt3": start_mr_mt3,
                 "yourmt3": start_yourmt3, "magenta": start_mt3_pytorch,
                 "magenta_piano": start_magenta_piano}


# ------------------------------------------------------------ §4.2 post-proc
def postprocess(row):
    """raw ids after the start token -> codec values with the anchor's markers:
    -1 at/after the first EOS (and for UNK), -3 for PAD, id - 3 otherwise."""
    out, eos = [], False
    for raw in row:
        raw = int(raw)
        if raw == 1:
            eos = True
        out.append(-1 if eos else raw - 3)
    return out


def magenta_postprocess(row, vocab="mt3"):
    """magenta-t5x §5.6 (decode_tf + trim_eos): -1 at/after the first EOS, ids
    3..base-1 -> id - 3, everything else (PAD, UNK, extra and padding ids, any
    other value) -> -2; then cut before the first -1."""
    base = 3 + codec_classes(vocab)
    out = []
    for raw in row:
        raw = int(raw)
        if raw == 1:
            break  # this and every later position is -1; cut there
        out.append(raw - 3 if 3 <= raw < base else -2)
    return out


# ---------------------------------------------- MT3 schemes: note state machine
MIN_DUR = 0.01


class _Reject(Exception):
    pass


class MT3State:
    def __init__(self, mrmt3, magenta_drums, num_velocity_bins=1):
        self.mrmt3 = mrmt3
        self.magenta_drums = magenta_drums
        self.num_velocity_bins = num_velocity_bins
        self.time = 0.0
        self.velocity = 100
        self.program = 0
        self.active = {}  # (pitch, program) -> (onset, velocity)
        self.tied = set()
        self.tie_section = False
        self.notes = []

    def add(self, pitch, start, end, vel, program, drum):
        self.notes.append((start, max(end, start + MIN_DUR), pitch, vel, program, bool(drum)))

    def event(self, t, kind, value):
        if t < self.time:
            raise _Reject
        self.time = t
        if kind == "pitch":
            key = (value, self.program)
            if self.tie_section:
                if key not in self.active or key in self.tied:
                    raise _Reject
                self.tied.add(key)
            elif self.velocity == 0:
                if key not in self.active:
                    raise _Reject
                on, v = self.active.pop(key)
                self.add(value, on, t, v, self.program, False)
            else:
                if key in self.active:
                    on, v = self.active.pop(key)
                    self.add(value, on, t, v, self.program, False)
                self.active[key] = (t, self.velocity)
        elif kind == "drum":
            if self.magenta_drums:
                if self.velocity == 0:
                    raise _Reject
                self.add(value, t, t + MIN_DUR, self.velocity, 0, True)
            else:  # MR-MT3: sustained drums keyed (d, 9)
                key = (value, 9)
                if self.velocity == 0:
                    if key not in self.active:
                        raise _Reject
                    on, v = self.active.pop(key)
                    self.add(value, on, t, v, 0, True)
                else:
                    if key in self.active:
                        on, v = self.active.pop(key)
                        self.add(value, on, t, v, 0, True)
                    self.active[key] = (t, self.velocity)
        elif kind == "velocity":  # vocabularies.bin_to_velocity
            self.velocity = 0 if value == 0 else int(127 * value / self.num_velocity_bins)
        elif kind == "program":
            self.program = value
        elif kind == "tie":
            if not self.tie_section:
                raise _Reject
            collide = self.mrmt3 and not self.magenta_drums
            for key in list(self.active):
                if key in self.tied:
                    continue
                on, v = self.active.pop(key)
                pitch, prog = key
                if collide and prog == 9:
                    self.add(pitch, on, t, v, 0, True)
                else:
                    self.add(pitch, on, t, v, prog, False)
            if self.mrmt3:
                self.tied.clear()
            self.tie_section = False
        else:
            raise _Reject

    def flush(self):
        if not self.mrmt3:
            end = self.time
            for on, _ in self.active.values():
                end = max(end, on + MIN_DUR)
            for (pitch, prog), (on, v) in list(self.active.items()):
                self.add(pitch, on, end, v, prog, False)
            self.active.clear()
        else:
            collide = not self.magenta_drums
            for (pitch, prog), (on, v) in self.active.items():
                self.add(pitch, on, max(self.time, on + MIN_DUR), v, prog, collide and prog == 9)
            self.active.clear()
        return self.notes


def decode_segment(state, values, start, max_time, vocab="mt3"):
    """§6.1 decode_events over codec values."""
    steps = 0
    t = start
    for pos, v in enumerate(values):
        ev = magenta_decode(v, vocab)
        if ev is None:
            continue
        kind, value = ev
        if kind == "shift":
            steps += value
            t = start + steps / 100
            if max_time and t > max_time:
                return
        else:
            steps = 0
            try:
                state.event(t, kind, value)
            except _Reject:
                pass


def decode_mt3(tokens, scheme, starts=None, drop_rule=None, magenta_drums=None):
    """tokens: list of rows of raw ids (one channel).  Returns notes in append order."""
    mrmt3 = scheme == "mr_mt3"
    if drop_rule is None:
        drop_rule = not mrmt3
    if magenta_drums is None:
        magenta_drums = not mrmt3
    n = len(tokens)
    if starts is None:
        starts = [DEFAULT_START[scheme](i) for i in range(n)]
    segs = []
    for i, row in enumerate(tokens):
        vals = postprocess(row)
        if mrmt3:
            vals = [v for v in vals if v >= 0]
        elif -1 in vals:
            vals = vals[: vals.index(-1)]
        segs.append((float(starts[i]), vals))
    order = sorted(range(n), key=lambda i: segs[i][0])
    state = MT3State(mrmt3, magenta_drums)
    for k, i in enumerate(order):
        start, vals = segs[i]
        if mrmt3 and not vals:
            continue
        max_time = segs[order[k + 1]][0] if (drop_rule and k + 1 < n) else None
        state.tied = set()
        state.tie_section = True
        decode_segment(state, vals, start, max_time)
        if mrmt3:
            state.tie_section = False
    return state.flush()


# -------------------------------------------------------------------- YourMT3
GM_EXT_PLUS = {  # group head -> (name, programs)   yourmt3 §6.3
    0: ("Acoustic Piano", [0, 1, 3, 6, 7]),
    2: ("Electric Piano", [2, 4, 5]),
    8: ("Chromatic Percussion", list(range(8, 16))),
    16: ("Organ", list(range(16, 24))),
    24: ("Guitar (clean)", list(range(24, 28))),
    30: ("Guitar (distortion)", [28, 29, 30, 31]),
    33: ("Bass", list(range(32, 40))),
    48: ("Strings", list(range(40, 56))),
    56: ("Brass", list(range(56, 64))),
    64: ("Reed", list(range(64, 72))),
    72: ("Pipe", list(range(72, 80))),
    80: ("Synth Lead", list(range(80, 88))),
    88: ("Synth Pad", list(range(88, 96))),
    100: ("Singing Voice", [100]),
    101: ("Singing Voice (chorus)", [101]),
}
PROGRAM_HEAD = {p: head for head, (_, ps) in GM_EXT_PLUS.items() for p in ps}


def ymt3_head(p):
    return PROGRAM_HEAD.get(p, p)


def ymt3_track_name(p):
    if p == 128:
        return "Drums"
    head = PROGRAM_HEAD.get(p)
    return GM_EXT_PLUS[head][0] if head is not None else f"Prg. {p}"


class YNote:
    """Mutable note (the trimming/validation steps change offsets in place)."""

    __slots__ = ("is_drum", "program", "onset", "offset", "pitch", "velocity")

    def __init__(self, is_drum, program, onset, offset, pitch, velocity):
        self.is_drum, self.program, self.onset = is_drum, program, onset
        self.offset, self.pitch, self.velocity = offset, pitch, velocity

    def as_tuple(self, velocity=None):
        return (self.onset, self.offset, self.pitch,
                self.velocity if velocity is None else velocity, self.program, self.is_drum)


def ymt3_row(row, st):
    """§7.1: events (time, is_drum, program, velocity, pitch), ties, active."""
    evs = [decode_id("yourmt3", int(r)) for r in row]
    for kind, _ in evs:
        if kind == "out_of_range":
            raise ValueError("token id outside the YourMT3 vocabulary")
    prog = None
    ties, active = [], []
    tie_at = None
    for i, (kind, v) in enumerate(evs):
        if kind == "tie":
            tie_at = i
            break
        if kind == "shift":
            break
        if kind == "program":
            prog = v
        elif kind == "pitch" and prog is not None:
            ties.append((prog, v))
            active.append((prog, v))
    if tie_at is None:
        return [], [], []
    start_tick = round(st * 100)
    tick = start_tick
    vel = None
    out = []
    for kind, v in evs[tie_at + 1:]:
        if kind == "shift":
            if 0 < v <= 1000:
                tick = start_tick + v
        elif kind == "drum":
            out.append((tick / 100, True, 128, 1, v))
        elif kind == "program":
            prog = v
        elif kind == "velocity":
            vel = v
        elif kind == "pitch":
            if prog is None or vel is None:
                continue
            if vel > 0:
                active.append((prog, v))
            elif (prog, v) in active:
                active.remove((prog, v))
            else:
                continue
            out.append((tick / 100, False, prog, vel, v))
        elif kind == "eos":
            break
    out.sort(key=lambda e: (e[0], e[1], e[2], e[3], e[4]))
    return out, ties, active


def trim_overlaps(notes):
    """§7.3 step 7 on a list of YNote (in place offsets); returns the new list."""
    if len(notes) <= 1:
        return notes
    groups = {}
    for n in notes:
        groups.setdefault((n.pitch, n.program, n.is_drum), []).append(n)
    out = []
    for g in groups.values():
        g = sorted(g, key=lambda n: n.onset)
        for a, b in zip(g, g[1:]):
            if a.offset > b.onset:
                a.offset = b.onset
        out.extend(n for n in g if n.onset < n.offset)
    out.sort(key=lambda n: (n.onset, n.is_drum, n.program, n.velocity, n.pitch))
    return out


def validate(notes):
    for n in notes:
        if n.onset > n.offset:
            n.offset = max(n.offset, n.onset + 0.01)
        elif not n.is_drum and n.offset - n.onset < 0.01:
            n.offset = n.onset + 0.01
    return notes


def ymt3_channel(rows, starts):
    merged = []
    prev = None
    for row, st in zip(rows, starts):
        evs, ties, active = ymt3_row(row, st)
        if prev is not None:
            tieset = set(ties)
            for prog, pitch in prev:
                if (prog, pitch) not in tieset:
                    merged.append((st, False, prog, 0, pitch))
        merged.extend(evs)
        prev = active
    # §7.3
    merged.sort(key=lambda e: (e[0], e[1], e[4], e[3], e[2]))
    notes, open_ = [], {}
    for t, drum, prog, vel, pitch in merged:
        if drum:
            notes.append(YNote(True, 128, t, t + 0.01, pitch, 1))
        elif vel == 1:
            if (pitch, prog) in open_:
                on = open_.pop((pitch, prog))
                notes.append(YNote(False, prog, on, t, pitch, 1))
            open_[(pitch, prog)] = t
        elif (pitch, prog) in open_:
            on = open_.pop((pitch, prog))
            notes.append(YNote(False, prog, on, t, pitch, 1))
    for (pitch, prog), on in open_.items():
        notes.append(YNote(False, prog, on, on + 0.01, pitch, 1))
    for n in notes:
        if n.offset - n.onset > 10:
            n.offset = n.onset + 0.01
    notes.sort(key=lambda n: (n.onset, n.is_drum, n.program, n.velocity, n.pitch))
    validate(notes)
    return trim_overlaps(notes)


def decode_yourmt3(tokens, starts=None, remap=True, trim_after_remap=False):
    """tokens: [segments][13][length].  Returns the final note tuples (velocity 100)."""
    n = len(tokens)
    if starts is None:
        starts = [start_yourmt3(i) for i in range(n)]
    starts = [float(s) for s in starts]
    allnotes = []
    for c in range(13):
        allnotes.extend(ymt3_channel([tokens[i][c] for i in range(n)], starts))
    allnotes.sort(key=lambda n: (n.onset, n.is_drum, n.program, n.velocity, n.pitch, n.offset))
    allnotes = validate(trim_overlaps(allnotes))
    if remap:
        for n in allnotes:
            if not n.is_drum:
                n.program = ymt3_head(n.program)
    if trim_after_remap:
        allnotes = trim_overlaps(allnotes)
    return [n.as_tuple(velocity=100) for n in allnotes]


MAGENTA_SCHEMES = {  # scheme -> (vocabulary, NoteEncodingWithTiesSpec?)   magenta-t5x §1, §6.3
    "magenta": ("mt3", True),
    "magenta_piano": ("magenta_piano", False),
}


def decode_magenta(tokens, scheme, starts=None):
    """Magenta's own inference (magenta-t5x §5.6, §5.7, §6): rows of raw ids ->
    notes in append order.  Same state machine as MT3-PyTorch; the token rule of
    §5.6; for "magenta_piano" 127 velocity bins and no tie section
    (begin_decoding_segment is a no-op, so a tie token is rejected)."""
    vocab, ties = MAGENTA_SCHEMES[scheme]
    n = len(tokens)
    if starts is None:
        starts = [DEFAULT_START[scheme](i) for i in range(n)]
    segs = [(float(starts[i]), magenta_postprocess(row, vocab)) for i, row in enumerate(tokens)]
    order = sorted(range(n), key=lambda i: segs[i][0])
    state = MT3State(False, True, velocity_bins(vocab))
    for k, i in enumerate(order):
        start, vals = segs[i]
        max_time = segs[order[k + 1]][0] if k + 1 < n else None
        if ties:
            state.tied = set()
            state.tie_section = True
        decode_segment(state, vals, start, max_time, vocab)
    return state.flush()


def decode(tokens, scheme, starts=None, corrected=False):
    """Dispatch like _core.decode_tokens(..., sort=False)."""
    if scheme in MAGENTA_SCHEMES:
        return decode_magenta(tokens, scheme, starts)
    if scheme == "yourmt3":
        return decode_yourmt3(tokens, starts, trim_after_remap=corrected)
    if scheme == "mr_mt3" and corrected:
        return decode_mt3(tokens, scheme, starts, drop_rule=True, magenta_drums=True)
    return decode_mt3(tokens, scheme, starts)


def design_sort(notes):
    return sorted(notes, key=lambda n: (n[0], n[2], n[4]))


# ------------------------------------------------------ notes -> tokens encoders
def encode_mt3(notes, seg_steps, length=None):
    """Magenta-style encoder.  notes: (on_step, off_step, pitch, program, is_drum)
    integer 10-ms steps, no overlapping (pitch, program) notes, drums 1 step.
    seg_steps: segment start steps (increasing); segment k holds events at steps in
    [seg_steps[k], seg_steps[k+1]).  Returns rows of raw ids (EOS, PAD-padded)."""
    enc = lambda name, v: encode_event("mt3", name, v)  # noqa: E731
    rows = []
    bounds = list(seg_steps) + [math.inf]
    for k in range(len(seg_steps)):
        s0, s1 = bounds[k], bounds[k + 1]
        row = []
        # tie section: notes sounding across the segment start
        tied = sorted((n for n in notes if not n[4] and n[0] < s0 < n[1]),
                      key=lambda n: (n[3], n[2]))
        prog = None
        for on, off, pitch, program, drum in tied:
            if program != prog:
                row.append(enc("program", program))
                prog = program
            row.append(enc("pitch", pitch))
        row.append(enc("tie", 0))
        events = {}
        for on, off, pitch, program, drum in notes:
            if drum:
                if s0 <= on < s1:
                    events.setdefault(on, []).append((2, 1, program, pitch, True))
                continue
            if s0 <= on < s1:
                events.setdefault(on, []).append((1, 1, program, pitch, False))
            if s0 <= off < s1:
                events.setdefault(off, []).append((0, 0, program, pitch, False))
        for step in sorted(events):
            if step > s0:
                delta = step - s0
                while delta > 1000:
                    row.append(enc("shift", 1000))
                    delta -= 1000
                row.append(enc("shift", delta))
            for _, vel, program, pitch, drum in sorted(events[step]):
                row.append(enc("velocity", vel))
                if drum:
                    row.append(enc("drum", pitch))
                else:
                    row.append(enc("program", program))
                    row.append(enc("pitch", pitch))
        row.append(1)
        rows.append(row)
    width = max(len(r) for r in rows) if length is None else length
    return [r + [0] * (width - len(r)) for r in rows]


YMT3_CHANNEL_OF = {}
for _c, _ps in enumerate([range(0, 8), range(8, 16), range(16, 24), range(24, 32), range(32, 40),
                          range(40, 56), range(56, 64), range(64, 72), range(72, 80), range(80, 88),
                          range(88, 96), [100, 101]]):
    for _p in _ps:
        YMT3_CHANNEL_OF[_p] = _c


def encode_yourmt3(notes, seg_ticks, length=256):
    """YourMT3 training-style encoder.  notes: (on_tick, off_tick, pitch, program,
    is_drum) in 10-ms ticks, programs in YMT3_CHANNEL_OF, drums 1 tick, no overlapping
    (pitch, program) notes.  seg_ticks: start ticks; segment k holds onsets in
    [t_k, t_k+1) and offsets in (t_k, t_k+1].  Returns [segments][13][length]."""
    enc = lambda name, v: encode_event("yourmt3", name, v)  # noqa: E731
    bounds = list(seg_ticks) + [10 ** 9]
    out = []
    for k in range(len(seg_ticks)):
        s0, s1 = bounds[k], bounds[k + 1]
        chans = []
        for c in range(13):
            mine = [n for n in notes if (c == 12 if n[4] else YMT3_CHANNEL_OF[n[3]] == c)]
            row = []
            tied = sorted((n for n in mine if not n[4] and n[0] < s0 < n[1]),
                          key=lambda n: (n[3], n[2]))
            prog = None
            for on, off, pitch, program, drum in tied:
                if program != prog:
                    row.append(enc("program", program))
                    prog = program
                row.append(enc("pitch", pitch))
            row.append(enc("tie", 0))
            events = {}
            for on, off, pitch, program, drum in mine:
                if s0 <= on < s1:
                    events.setdefault(on, []).append((1, program, pitch, drum))
                if not drum and s0 < off <= s1:
                    events.setdefault(off, []).append((0, program, pitch, drum))
            prog, vel = None, None
            for tick in sorted(events):
                if tick > s0:
                    row.append(enc("shift", tick - s0))
                for v, program, pitch, drum in sorted(events[tick]):
                    if drum:
                        row.append(enc("drum", pitch))
                        continue
                    if program != prog:
                        row.append(enc("program", program))
                        prog = program
                    if v != vel:
                        row.append(enc("velocity", v))
                        vel = v
                    row.append(enc("pitch", pitch))
            row.append(1)
            if len(row) > length:
                raise ValueError("row too long for the test encoder")
            chans.append(row + [0] * (length - len(row)))
        out.append(chans)
    return out

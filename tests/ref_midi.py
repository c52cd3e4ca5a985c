"""Reference MIDI writers built on mido, written from the specs
(specs/mt3-family.md §7, specs/yourmt3.md §7.5-7.6, specs/magenta-t5x.md §5.8),
not from the C code.

Notes are tuples / records (onset, offset, pitch, velocity, program, is_drum).
Every writer returns the bytes mido saves.
"""
from __future__ import annotations

import functools
import io

import mido

from ref_decode import ymt3_head, ymt3_track_name


def _bytes(mid):
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def _tuples(notes):
    return [(float(n[0]), float(n[1]), int(n[2]), int(n[3]), int(n[4]), bool(n[5])) for n in notes]


GM_CH = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]


# ------------------------------------------------------------------ MR-MT3 §7.1
def mrmt3_midi(notes, abs_ticks=False, program_channels=False):
    notes = _tuples(notes)
    mid = mido.MidiFile(ticks_per_beat=220)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    chan = {}
    if program_channels:  # [F] variant, as documented in csrc/core/midi.h
        progs = sorted({n[4] for n in notes if not n[5]})
        for i, p in enumerate(progs):
            chan[p] = GM_CH[i] if i < 15 else 15
            tr.append(mido.Message("program_change", program=p, channel=chan[p], time=0))
    events = []
    for on, off, pitch, vel, prog, drum in sorted(notes, key=lambda n: n[0]):
        ch = 9 if drum else chan.get(prog, 0)
        events.append((on, "note_on", pitch, vel, ch))
        events.append((off, "note_off", pitch, 0, ch))
    events.sort(key=lambda e: e[0])
    prev, prev_tick = 0.0, 0
    for t, kind, pitch, vel, ch in events:
        if abs_ticks:
            tick = round(t * 220 * 2)
            delta = max(0, tick - prev_tick)
            prev_tick = max(prev_tick, tick)
        else:
            delta = max(0, int((t - prev) * 220 * 2))
            prev = t
        tr.append(mido.Message(kind, note=pitch, velocity=vel, channel=ch, time=delta))
    tr.append(mido.MetaMessage("end_of_track", time=0))
    return _bytes(mid)


# ---------------------------------------------------- pretty_midi writer §7.2
TICK_SCALE = 60.0 / (120.0 * 220)


def _tick(t):
    return 0 if t <= 0 else round(t / TICK_SCALE)


_SECONDARY = {  # pretty_midi's event_compare scores; other types compare by tick only
    "set_tempo": lambda m: 1 * 65536,
    "time_signature": lambda m: 2 * 65536,
    "program_change": lambda m: 6 * 65536,
    "note_on": lambda m: 10 * 65536 + 256 * m.note + m.velocity,
}


def _cmp(a, b):
    if a.time == b.time and a.type in _SECONDARY and b.type in _SECONDARY:
        return _SECONDARY[a.type](a) - _SECONDARY[b.type](b)
    return a.time - b.time


def _pm_midifile(instruments):
    """PrettyMIDI(resolution=220, initial_tempo=120).write for instruments given as
    (program, is_drum, name, notes) in pm.instruments order."""
    mid = mido.MidiFile(ticks_per_beat=220)
    timing = [mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
              mido.MetaMessage("set_tempo", tempo=500000, time=0)]
    timing.sort(key=functools.cmp_to_key(_cmp))
    timing.append(mido.MetaMessage("end_of_track", time=timing[-1].time + 1))
    tracks = [timing]
    for i, (prog, drum, name, ns) in enumerate(instruments):
        ch = 9 if drum else GM_CH[i % 15]
        tr = [mido.MetaMessage("track_name", name=name, time=0)] if name else []
        tr.append(mido.Message("program_change", program=prog, channel=ch, time=0))
        for on, off, pitch, vel, _, _ in ns:
            tr.append(mido.Message("note_on", note=pitch, velocity=vel, channel=ch, time=_tick(on)))
            tr.append(mido.Message("note_on", note=pitch, velocity=0, channel=ch, time=_tick(off)))
        tr.sort(key=functools.cmp_to_key(_cmp))
        tr.append(mido.MetaMessage("end_of_track", time=tr[-1].time + 1))
        tracks.append(tr)
    for tr in tracks:
        last = 0
        mt = mido.MidiTrack()
        for m in tr:
            mt.append(m.copy(time=m.time - last))
            last = m.time
        mid.tracks.append(mt)
    return mid


def pretty_midifile(notes):
    """The MidiFile pretty_midi would write (absolute ticks converted to deltas)."""
    insts = {}
    for n in _tuples(notes):
        key = (0 if n[4] > 127 else n[4], n[5])
        insts.setdefault(key, []).append(n)
    return _pm_midifile([(prog, drum, "", ns) for (prog, drum), ns in insts.items()])


# ----------------------------------------------------------- auto_filter §7.4
def auto_filter_decision(mid):
    prog_of = {}
    drum = bass = chrom = other = 0
    for tr in mid.tracks:
        for m in tr:
            if m.type == "program_change":
                prog_of[m.channel] = m.program
            elif m.type == "note_on" and m.velocity > 0:
                if m.channel == 9:
                    drum += 1
                else:
                    p = prog_of.get(m.channel, 0)
                    if 32 <= p <= 39:
                        bass += 1
                    elif 8 <= p <= 15:
                        chrom += 1
                    else:
                        other += 1
    total = drum + bass + chrom + other
    if total == 0:
        return "unchanged"
    if drum > 0 and (bass / total > 0.2 or chrom / total > 0.5):
        return "drums_only"
    if drum / total > 0.6:
        return "drums_only"
    if chrom / total > 0.7:
        return "remap"
    return "unchanged"


def auto_filter(mid):
    action = auto_filter_decision(mid)
    if action == "unchanged":
        return mid, action
    out = mido.MidiFile(ticks_per_beat=mid.ticks_per_beat)
    for tr in mid.tracks:
        nt = mido.MidiTrack()
        for m in tr:
            if action == "drums_only":
                if m.is_meta or m.channel == 9:
                    nt.append(m)
            else:
                if m.type == "program_change":
                    continue
                if m.type in ("note_on", "note_off"):
                    nt.append(m.copy(channel=9))
                else:
                    nt.append(m)
        out.tracks.append(nt)
    return out, action


def pretty_midi_bytes(notes, auto_filter_on=True):
    raw = _bytes(pretty_midifile(notes))
    if not auto_filter_on:
        return raw
    mid = mido.MidiFile(file=io.BytesIO(raw))  # the anchor filters the read-back file
    filtered, _ = auto_filter(mid)
    return _bytes(filtered)


# --------------------------------------------------------- YourMT3 writer §7.6
def yourmt3_midi(notes):
    notes = _tuples(notes)
    events = []  # (time, is_drum, program, velocity, pitch)
    for on, off, pitch, vel, prog, drum in notes:
        p = 128 if drum else ymt3_head(prog)
        events.append((on, drum, p, vel, pitch))
        if not drum:
            events.append((off, drum, p, 0, pitch))
    key = lambda e: (e[0], e[1], e[2], e[3], e[4])  # noqa: E731
    events.sort(key=key)
    events += [(e[0] + 0.01, True, 128, 0, e[4]) for e in events if e[1]]
    events.sort(key=key)
    programs = sorted({e[2] for e in events})
    free = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]
    chan = {}
    for p in programs:
        chan[p] = 9 if p == 128 else (free.pop(0) if free else 15)
    mid = mido.MidiFile(ticks_per_beat=480, type=1)
    mid.tracks.append(mido.MidiTrack())
    for p in programs:
        tr = mido.MidiTrack()
        tr.append(mido.MetaMessage("track_name", name=ymt3_track_name(p), time=0))
        pc = {128: 0, 100: 65, 101: 53}.get(p, p)
        tr.append(mido.Message("program_change", program=pc, channel=chan[p], time=0))
        cur = 0
        for t, drum, prog, vel, pitch in events:
            if prog != p:
                continue
            tick = round(mido.second2tick(t, 480, 500000))
            assert tick >= cur
            delta, cur = tick - cur, tick
            if vel > 0:
                tr.append(mido.Message("note_on", note=pitch, velocity=100, channel=chan[p], time=delta))
            else:
                tr.append(mido.Message("note_off", note=pitch, velocity=0, channel=chan[p], time=delta))
        mid.tracks.append(tr)
    return _bytes(mid)


# ------------------------------------------- Magenta / note_seq writer (magenta-t5x §5.8)
# General MIDI program names as pretty_midi spells them (note_seq names its
# instruments with them); the C writer's own table is checked against it
from pretty_midi.constants import INSTRUMENT_MAP as GM_PROGRAM_NAMES  # noqa: E402
assert len(GM_PROGRAM_NAMES) == 128


def assign_instruments(notes):
    """mt3 metrics_utils/note_sequences assign_instruments: instrument number per
    note, in note-list order (new pitched program -> 0..8, 10, 11, ...; drums 9)."""
    program_instruments = {}
    out = []
    for n in notes:
        if n[5]:
            out.append(9)
        else:
            if n[4] not in program_instruments:
                k = len(program_instruments)
                program_instruments[n[4]] = k if k < 9 else k + 1
            out.append(program_instruments[n[4]])
    return out


def magenta_instruments(notes):
    """note_seq.note_sequence_to_pretty_midi's pm.instruments as
    (program, is_drum, name, notes)."""
    notes = [(on, off, p, v, 0 if g > 127 else g, d) for on, off, p, v, g, d in _tuples(notes)]
    groups = {}
    for n, inst in zip(notes, assign_instruments(notes)):
        groups.setdefault((inst, n[4], n[5]), []).append(n)
    first = [0, False, "", []]  # pretty_midi.Instrument(0), appended before any note
    instruments = [first]
    for inst, prog, drum in sorted(groups):
        if inst > 0:
            name = "Drums" if drum else GM_PROGRAM_NAMES[prog]
            instruments.append([prog, drum, name, groups[(inst, prog, drum)]])
        else:
            first[0], first[1], first[3] = prog, drum, groups[(inst, prog, drum)]
    return [tuple(i) for i in instruments]


def magenta_midi(notes):
    """note_seq.sequence_proto_to_midi_file bytes (no auto_filter)."""
    return _bytes(_pm_midifile(magenta_instruments(notes)))


def midi_bytes(notes, style, auto_filter_on=True, corrected=False):
    if style == "mr_mt3":
        return mrmt3_midi(notes, abs_ticks=corrected, program_channels=corrected)
    if style in ("pretty", "mt3_pytorch"):
        return pretty_midi_bytes(notes, auto_filter_on)
    if style == "yourmt3":
        return yourmt3_midi(notes)
    if style == "magenta":
        return magenta_midi(notes)
    raise ValueError(style)


STYLE_OF_SCHEME = {"mt3_pytorch": "pretty", "mr_mt3": "mr_mt3", "yourmt3": "yourmt3"}


# ------------------------------------------------------------ checks on files
def check_midi(data):
    """Parse with mido; every note_on (velocity > 0) pairs with a later off on the
    same channel/pitch; deltas >= 0.  Returns the MidiFile."""
    mid = mido.MidiFile(file=io.BytesIO(data))
    for tr in mid.tracks:
        open_ = {}
        for m in tr:
            assert m.time >= 0
            if m.type == "note_on" and m.velocity > 0:
                open_[(m.channel, m.note)] = open_.get((m.channel, m.note), 0) + 1
            elif m.type == "note_off" or (m.type == "note_on" and m.velocity == 0):
                k = (m.channel, m.note)
                assert open_.get(k, 0) > 0, f"unmatched note off {m}"
                open_[k] -= 1
        assert all(v == 0 for v in open_.values()), "note left open"
    return mid

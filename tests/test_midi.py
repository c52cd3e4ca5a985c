"""MIDI writers: byte examples of both specs, C bytes == mido-based reference
bytes (tests/ref_midi.py) on random notes, auto_filter cases, rounding, the
corrected MR-MT3 writer, tokens -> MIDI end to end, validation and fuzzing."""
import io

import mido
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mt3_infer import _core, codec
from mt3_infer.codec import NOTE_DTYPE, notes_to_midi, tokens_to_midi

import ref_decode as R
import ref_midi as RM

HDR = bytes.fromhex


def notes_arr(*notes):
    return np.array([tuple(n) for n in notes], dtype=NOTE_DTYPE)


def track(body):
    return b"MTrk" + len(body).to_bytes(4, "big") + body


PIANO = (0.0, 1.0, 60, 127, 0, False)
DRUM = (0.5, 0.51, 36, 127, 0, True)


# ------------------------------------------------------------ byte examples
def test_mrmt3_byte_example():
    # mt3-family §7.1
    body = HDR("00FF510307A120 00903C7F 815C99247F 04892400 81578 03C00 00FF2F00".replace(" ", ""))
    expect = HDR("4D546864 00000006 0001 0001 00DC".replace(" ", "")) + track(body)
    got = notes_to_midi(notes_arr(PIANO, DRUM), "mr_mt3")
    assert got == expect
    assert RM.mrmt3_midi([PIANO, DRUM]) == expect
    mid = RM.check_midi(got)
    ticks = np.cumsum([msg.time for msg in mid.tracks[0]]).tolist()
    assert ticks[-2] == 439  # drift: not 440


def test_pretty_byte_example():
    # mt3-family §7.2, note list order drum then piano
    expect = (HDR("4D546864000000060001000300DC")
              + track(HDR("00FF510307A12000FF580404021808 01FF2F00".replace(" ", "")))
              + track(HDR("00C900815C99247F04240001FF2F00"))
              + track(HDR("00C10000913C7F83383C0001FF2F00")))
    for af in (True, False):  # 50 % drums: auto_filter leaves it unchanged
        got = notes_to_midi(notes_arr(DRUM, PIANO), "pretty", auto_filter=af)
        assert got == expect
    assert RM.pretty_midi_bytes([DRUM, PIANO]) == expect
    RM.check_midi(expect)


def test_pretty_empty_notes():
    expect = (HDR("4D546864000000060001000100DC")
              + track(HDR("00FF510307A12000FF58040402180801FF2F00")))
    assert notes_to_midi(np.zeros(0, NOTE_DTYPE), "pretty") == expect
    assert notes_to_midi([], "mt3_pytorch", auto_filter=False) == expect


def test_yourmt3_byte_example_1():
    # yourmt3 §7.7 example 1
    name = b"Acoustic Piano"
    body = (HDR("00FF030E") + name + HDR("00C000") + HDR("8360903C64") + HDR("8360803C00")
            + HDR("00FF2F00"))
    assert len(body) == 35
    expect = (HDR("4D546864000000060001000201E0") + track(HDR("00FF2F00")) + track(body))
    got = notes_to_midi(notes_arr((0.5, 1.0, 60, 100, 0, False)), "yourmt3")
    assert got == expect
    toks = np.zeros((1, 13, 11), np.int64)
    toks[:, :, :2] = [339, 1]
    toks[0, 0] = [339, 53, 340, 338, 269, 103, 337, 269, 1, 0, 0]
    b, notes = tokens_to_midi(toks, "yourmt3")
    assert b == expect


def test_yourmt3_drum_example_3():
    toks = np.zeros((1, 13, 5), np.int64)
    toks[:, :, :2] = [339, 1]
    toks[0, 12] = [339, 13, 338, 504, 1]
    b, _ = tokens_to_midi(toks, "yourmt3")
    mid = RM.check_midi(b)
    assert len(mid.tracks) == 2 and mid.ticks_per_beat == 480
    tr = mid.tracks[1]
    assert tr[0].type == "track_name" and tr[0].name == "Drums"
    assert (tr[1].type, tr[1].channel, tr[1].program) == ("program_change", 9, 0)
    ticks = np.cumsum([msg.time for msg in tr]).tolist()
    assert [(m.type, m.channel, m.note, t) for m, t in list(zip(tr, ticks))[2:4]] == [
        ("note_on", 9, 36, 96), ("note_off", 9, 36, 106)]
    assert tr[2].velocity == 100


def test_yourmt3_empty():
    expect = HDR("4D546864000000060001000101E0") + track(HDR("00FF2F00"))
    assert notes_to_midi(np.zeros(0, NOTE_DTYPE), "yourmt3") == expect


def test_yourmt3_programs_names_channels():
    # 17 programs: channel 9 skipped, beyond 15 programs share channel 15; names and
    # singing voice program changes of yourmt3 §6.3/§7.6
    progs = [0, 2, 8, 16, 24, 30, 33, 48, 56, 64, 72, 80, 88, 96, 100, 101, 120]
    notes = [(0.1 * i, 0.1 * i + 0.5, 60, 100, p, False) for i, p in enumerate(progs)]
    notes.append((0.2, 0.21, 38, 100, 128, True))
    got = notes_to_midi(notes_arr(*notes), "yourmt3")
    assert got == RM.yourmt3_midi(notes)
    mid = RM.check_midi(got)
    names = [tr[0].name for tr in mid.tracks[1:]]
    assert names == ["Acoustic Piano", "Electric Piano", "Chromatic Percussion", "Organ",
                     "Guitar (clean)", "Guitar (distortion)", "Bass", "Strings", "Brass", "Reed",
                     "Pipe", "Synth Lead", "Synth Pad", "Prg. 96", "Singing Voice",
                     "Singing Voice (chorus)", "Prg. 120", "Drums"]
    chans = [tr[1].channel for tr in mid.tracks[1:]]
    assert chans == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 15, 15, 9]
    pcs = [tr[1].program for tr in mid.tracks[1:]]
    assert pcs[14:] == [65, 53, 120, 0]


# ---------------------------------------------------------- random vs reference
def random_notes(rng, n, drums=True, grid=None):
    out = []
    for _ in range(n):
        if grid:
            on = int(rng.integers(0, 400)) * grid
            off = on + int(rng.integers(0, 60)) * grid
        else:
            on = float(rng.choice([0.0, rng.uniform(0, 5), rng.uniform(0, 0.02)]))
            off = on + float(rng.choice([0.0, 0.01, rng.uniform(0, 2)]))
        drum = drums and rng.random() < 0.3
        prog = int(rng.choice([0, 1, 9, 10, 33, 35, 40, 100, 127])) if not drum else \
            int(rng.choice([0, 0, 9, 128]))
        out.append((on, off, int(rng.integers(0, 128)), int(rng.integers(1, 128)), prog, drum))
    return out


@pytest.mark.parametrize("style", ["mr_mt3", "pretty", "yourmt3"])
def test_random_notes_match_reference(style):
    rng = np.random.default_rng({"mr_mt3": 1, "pretty": 2, "yourmt3": 3}[style])
    for trial in range(150):
        notes = random_notes(rng, int(rng.integers(0, 40)),
                             grid=[None, 0.01, 1 / 440, 1 / 960][trial % 4])
        arr = notes_arr(*notes) if notes else np.zeros(0, NOTE_DTYPE)
        for af in (True, False):
            got = notes_to_midi(arr, style, auto_filter=af)
            assert got == RM.midi_bytes(notes, style, auto_filter_on=af), (trial, notes)
            mido.MidiFile(file=io.BytesIO(got))
        if style == "mr_mt3":
            got = notes_to_midi(arr, style, corrected=True)
            assert got == RM.midi_bytes(notes, style, corrected=True)


def test_reference_writer_equals_pretty_midi():
    pretty_midi = pytest.importorskip("pretty_midi")
    rng = np.random.default_rng(8)
    for _ in range(40):
        notes = [n for n in random_notes(rng, int(rng.integers(0, 30))) if n[4] <= 127]
        pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
        insts = {}
        for on, off, pitch, vel, prog, drum in notes:
            if (prog, drum) not in insts:
                insts[(prog, drum)] = pretty_midi.Instrument(program=prog, is_drum=drum)
                pm.instruments.append(insts[(prog, drum)])
            insts[(prog, drum)].notes.append(pretty_midi.Note(velocity=vel, pitch=pitch, start=on,
                                                              end=off))
        buf = io.BytesIO()
        pm.write(buf)
        assert RM.pretty_midi_bytes(notes, auto_filter_on=False) == buf.getvalue()
        arr = notes_arr(*notes) if notes else np.zeros(0, NOTE_DTYPE)
        assert notes_to_midi(arr, "pretty", auto_filter=False) == buf.getvalue()


def test_decoded_notes_pair_up():
    rng = np.random.default_rng(21)
    import test_notes as TN

    for scheme in ("mt3_pytorch", "mr_mt3"):
        for _ in range(40):
            toks = TN.random_mt3_tokens(rng, 4, 80)
            b, notes = tokens_to_midi(toks, scheme, auto_filter=False)
            RM.check_midi(b)
    for _ in range(20):
        toks = TN.random_ymt3_tokens(rng, 3, 40)
        b, notes = tokens_to_midi(toks, "yourmt3")
        RM.check_midi(b)


@pytest.mark.parametrize("scheme", ["mt3_pytorch", "mr_mt3", "yourmt3"])
def test_tokens_to_midi_end_to_end(scheme):
    # decode with the reference and write with the reference writer: anchor pipeline
    import test_notes as TN

    rng = np.random.default_rng(77)
    for trial in range(40):
        if scheme == "yourmt3":
            toks = TN.random_ymt3_tokens(rng, int(rng.integers(1, 4)), 40)
        else:
            toks = TN.random_mt3_tokens(rng, int(rng.integers(1, 5)), 60)
        for corrected in (False, True):
            b, notes = tokens_to_midi(toks, scheme, corrected=corrected)
            ref_notes = R.decode(toks.tolist(), scheme, None, corrected)
            assert TN.as_tuples(notes) == ref_notes
            assert b == RM.midi_bytes(ref_notes, RM.STYLE_OF_SCHEME[scheme],
                                      corrected=corrected), trial
        if scheme == "mt3_pytorch":
            b, _ = tokens_to_midi(toks, scheme, auto_filter=False)
            assert b == RM.pretty_midi_bytes(ref_notes, auto_filter_on=False)


# --------------------------------------------------------------- auto_filter
def af_notes(n_drum, n_bass=0, n_chrom=0, n_piano=0):
    notes, t = [], 0.0
    for n, prog, drum in ((n_drum, 0, True), (n_bass, 33, False), (n_chrom, 11, False),
                          (n_piano, 0, False)):
        for _ in range(n):
            notes.append((t, t + 0.1, 40 + len(notes) % 20, 127, prog, drum))
            t += 0.05
    return notes


def parse(b):
    return mido.MidiFile(file=io.BytesIO(b))


def test_auto_filter_cases():
    # mt3-family §12: drums 61 % -> drums only
    notes = af_notes(61, n_piano=39)
    b = notes_to_midi(notes_arr(*notes), "pretty")
    assert b == RM.pretty_midi_bytes(notes)
    mid = parse(b)
    assert len(mid.tracks) == 3
    assert mid.tracks[2][:] == [mido.MetaMessage("end_of_track", time=1)]
    assert track(HDR("01FF2F00")) in b
    assert sum(1 for m in mid.tracks[1] if m.type == "note_on" and m.velocity) == 61
    # drums + 25 % bass -> drums only
    notes = af_notes(20, n_bass=25, n_piano=55)
    b = notes_to_midi(notes_arr(*notes), "pretty")
    assert b == RM.pretty_midi_bytes(notes)
    assert all(m.is_meta for m in parse(b).tracks[2]) and all(m.is_meta for m in parse(b).tracks[3])
    # 80 % chromatic percussion, no drums -> remap to channel 9, no program changes
    notes = af_notes(0, n_chrom=80, n_piano=20)
    b = notes_to_midi(notes_arr(*notes), "pretty")
    assert b == RM.pretty_midi_bytes(notes)
    msgs = [m for tr in parse(b).tracks for m in tr if not m.is_meta]
    assert all(m.type == "note_on" and m.channel == 9 for m in msgs) and len(msgs) == 200
    # 50/50 drums / piano -> unchanged
    notes = af_notes(50, n_piano=50)
    assert notes_to_midi(notes_arr(*notes), "pretty") == \
        notes_to_midi(notes_arr(*notes), "pretty", auto_filter=False)
    # exactly 60 % drums is not > 0.6 -> unchanged; 20 % bass is not > 0.2
    notes = af_notes(60, n_piano=40)
    assert notes_to_midi(notes_arr(*notes), "pretty") == RM.pretty_midi_bytes(notes, False)
    notes = af_notes(10, n_bass=20, n_piano=70)
    assert notes_to_midi(notes_arr(*notes), "pretty") == RM.pretty_midi_bytes(notes, False)
    # auto_filter is a pretty-style option only
    notes = af_notes(61, n_piano=39)
    assert notes_to_midi(notes_arr(*notes), "mr_mt3", auto_filter=True) == \
        notes_to_midi(notes_arr(*notes), "mr_mt3", auto_filter=False)


def test_auto_filter_decision_matches_reference_random():
    rng = np.random.default_rng(4)
    seen = set()
    for _ in range(150):
        counts = rng.integers(0, 12, size=4) * rng.integers(0, 2, size=4)
        notes = af_notes(*[int(c) for c in counts])
        b = notes_to_midi(notes_arr(*notes) if notes else np.zeros(0, NOTE_DTYPE), "pretty")
        assert b == RM.pretty_midi_bytes(notes)
        seen.add(RM.auto_filter_decision(parse(RM.pretty_midi_bytes(notes, False))))
    assert seen == {"unchanged", "drums_only", "remap"}


# ------------------------------------------------------------------ rounding
def half_tick_times(scale, count=3):
    out = []
    for k in range(1, 100000):
        t = (k + 0.5) * scale
        if t / scale == k + 0.5:
            out.append((t, k))
            if len(out) == count:
                break
    return out


def test_pretty_round_half_even():
    cases = half_tick_times(60.0 / (120.0 * 220))
    assert cases
    for t, k in cases:
        b = notes_to_midi(notes_arr((t, t + 1.0, 60, 100, 0, False)), "pretty", auto_filter=False)
        tr = parse(b).tracks[1]
        expect = k if k % 2 == 0 else k + 1
        assert tr[1].time == expect
        assert b == RM.pretty_midi_bytes([(t, t + 1.0, 60, 100, 0, False)], False)


def test_yourmt3_round_half_even():
    cases = half_tick_times((500000 * 1e-6) / 480)
    assert cases
    for t, k in cases:
        b = notes_to_midi(notes_arr((t, t + 1.0, 60, 100, 0, False)), "yourmt3")
        tr = parse(b).tracks[1]
        assert tr[2].time == (k if k % 2 == 0 else k + 1)


def test_mrmt3_corrected_writer():
    notes = [PIANO, DRUM, (0.2, 0.7, 40, 127, 33, False)]
    default = parse(notes_to_midi(notes_arr(*notes), "mr_mt3"))
    fixed_b = notes_to_midi(notes_arr(*notes), "mr_mt3", corrected=True)
    fixed = parse(fixed_b)
    assert fixed_b == RM.mrmt3_midi(notes, abs_ticks=True, program_channels=True)
    # default: all pitched notes on channel 0, no program change, truncated ticks
    assert {m.channel for m in default.tracks[0] if not m.is_meta and m.channel != 9} == {0}
    assert not any(m.type == "program_change" for m in default.tracks[0])
    # corrected: per-program channels with program changes, ticks round(t * 440)
    pcs = [(m.channel, m.program) for m in fixed.tracks[0] if m.type == "program_change"]
    assert pcs == [(0, 0), (1, 33)]
    ticks = np.cumsum([m.time for m in fixed.tracks[0]])
    offs = {(m.note, m.channel): int(t) for m, t in zip(fixed.tracks[0], ticks)
            if m.type == "note_off"}
    assert offs[(60, 0)] == 440 and offs[(40, 1)] == round(0.7 * 440)
    # only the flagged parts change
    only_abs = parse(notes_to_midi(notes_arr(*notes), "mr_mt3", flags=codec.MIDI_ABS_TICKS))
    assert not any(m.type == "program_change" for m in only_abs.tracks[0])
    assert notes_to_midi(notes_arr(*notes), "mr_mt3", flags=codec.MIDI_ABS_TICKS) == \
        RM.mrmt3_midi(notes, abs_ticks=True)
    assert notes_to_midi(notes_arr(*notes), "mr_mt3", flags=codec.MIDI_PROGRAM_CHANNELS) == \
        RM.mrmt3_midi(notes, program_channels=True)
    # corrected has no effect on the other writers
    for style in ("pretty", "yourmt3"):
        assert notes_to_midi(notes_arr(*notes), style, corrected=True) == \
            notes_to_midi(notes_arr(*notes), style)


def test_mrmt3_drift_grows():
    notes = [(0.01 * i, 0.01 * i + 0.01, 60, 127, 0, False) for i in range(200)]
    d = parse(notes_to_midi(notes_arr(*notes), "mr_mt3"))
    f = parse(notes_to_midi(notes_arr(*notes), "mr_mt3", corrected=True))
    end_d = sum(m.time for m in d.tracks[0])
    end_f = sum(m.time for m in f.tracks[0])
    assert end_f == round(2.0 * 440) and end_d < end_f - 50


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("bad,msg", [
    ((float("nan"), 1.0, 60, 100, 0, False), "finite"),
    ((0.0, float("inf"), 60, 100, 0, False), "finite"),
    ((-0.5, 1.0, 60, 100, 0, False), "negative"),
    ((1.0, 0.5, 60, 100, 0, False), "before onset"),
    ((0.0, 1.0, 128, 100, 0, False), "pitch"),
    ((0.0, 1.0, -1, 100, 0, False), "pitch"),
    ((0.0, 1.0, 60, 128, 0, False), "velocity"),
    ((0.0, 1.0, 60, 100, 128, False), "program"),
    ((0.0, 1.0, 60, 100, 129, True), "program"),
    ((0.0, 2e9, 60, 100, 0, False), "beyond"),
])
@pytest.mark.parametrize("style", ["mr_mt3", "pretty", "yourmt3"])
def test_validation(bad, msg, style):
    with pytest.raises(ValueError, match=msg):
        notes_to_midi(notes_arr(PIANO, bad), style)


def test_input_forms():
    assert notes_to_midi([PIANO, DRUM], "mr_mt3") == notes_to_midi(notes_arr(PIANO, DRUM), "mr_mt3")
    other = np.zeros(2, dtype=[("is_drum", "i1"), ("pitch", "u1"), ("onset", "f4"), ("offset", "f8"),
                               ("program", "i8"), ("velocity", "i2"), ("extra", "f8")])
    for f in ("onset", "offset", "pitch", "velocity", "program", "is_drum"):
        other[f] = notes_arr(PIANO, (0.5, 0.75, 36, 127, 0, True))[f]
    assert notes_to_midi(other, "pretty") == notes_to_midi(notes_arr(PIANO, (0.5, 0.75, 36, 127, 0,
                                                                           True)), "pretty")
    with pytest.raises(ValueError, match="missing 'velocity'"):
        notes_to_midi(np.zeros(1, dtype=[("onset", "f8"), ("offset", "f8"), ("pitch", "i4"),
                                         ("program", "i4"), ("is_drum", "?")]), "pretty")
    with pytest.raises(ValueError, match="integer"):
        bad = np.zeros(1, dtype=[("onset", "f8"), ("offset", "f8"), ("pitch", "f8"),
                                 ("velocity", "i4"), ("program", "i4"), ("is_drum", "?")])
        notes_to_midi(bad, "pretty")
    with pytest.raises(ValueError):
        notes_to_midi(np.zeros((2, 2)), "pretty")
    with pytest.raises(ValueError):
        _core.notes_to_midi([PIANO], "pretty")  # the C layer wants a structured array
    with pytest.raises(ValueError, match="style"):
        notes_to_midi([PIANO], "midi")
    with pytest.raises(ValueError, match="flags"):
        notes_to_midi([PIANO], "pretty", flags=1 << 12)
    with pytest.raises(ValueError):
        notes_to_midi([(1, 2, 3)], "pretty")


# ------------------------------------------------------------------- fuzzing
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
times = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 30),
                  st.sampled_from([0.0, 0.01, 1 / 440, 0.5]))
ints = st.one_of(st.integers(-2, 130), st.integers(-(2**40), 2**40))
note = st.tuples(times, times, ints, ints, ints, st.booleans())


def valid(n):
    on, off, p, v, g, d = n
    ok = all(np.isfinite([on, off])) and 0 <= on <= off <= 1e9
    return ok and 0 <= p <= 127 and 0 <= v <= 127 and 0 <= g <= (128 if d else 127)


@FUZZ
@given(ns=st.lists(note, max_size=12), style=st.sampled_from(["mr_mt3", "pretty", "yourmt3"]),
       af=st.booleans(), corrected=st.booleans())
def test_fuzz_notes(ns, style, af, corrected):
    arr = np.array(ns, dtype=[("onset", "f8"), ("offset", "f8"), ("pitch", "i8"),
                              ("velocity", "i8"), ("program", "i8"), ("is_drum", "?")])
    if not all(valid(n) for n in ns):
        with pytest.raises(ValueError):
            notes_to_midi(arr, style, auto_filter=af, corrected=corrected)
        return
    got = notes_to_midi(arr, style, auto_filter=af, corrected=corrected)
    assert got == RM.midi_bytes(ns, style, auto_filter_on=af, corrected=corrected)
    mid = mido.MidiFile(file=io.BytesIO(got))
    assert all(m.time >= 0 for tr in mid.tracks for m in tr)

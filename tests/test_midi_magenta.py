"""The "magenta" MIDI writer (specs/magenta-t5x.md §5.8): note_seq's
sequence_proto_to_midi_file -> pretty_midi bytes.  The spec's byte example, the
conformance files of §8 item 7 (empty, drums only, 10 programs), C bytes ==
the mido-based reference (tests/ref_midi.py) on random note lists, and, where
pretty_midi is installed, the reference against pretty_midi itself."""
import io

import mido
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mt3_infer import codec
from mt3_infer.codec import NOTE_DTYPE, notes_to_midi

import ref_decode as R
import ref_midi as RM

HDR = bytes.fromhex
TIMING = HDR("00FF510307A12000FF58040402180801FF2F00")
EMPTY_PROGRAM_0 = HDR("00C00001FF2F00")


def notes_arr(*notes):
    return np.array([tuple(n) for n in notes], dtype=NOTE_DTYPE) if notes else \
        np.zeros(0, NOTE_DTYPE)


def track(body):
    return b"MTrk" + len(body).to_bytes(4, "big") + body


def header(ntracks):
    return HDR("4D546864000000060001") + ntracks.to_bytes(2, "big") + HDR("00DC")


def parse(b):
    return mido.MidiFile(file=io.BytesIO(b))


def magenta(notes, **kw):
    return notes_to_midi(notes_arr(*notes), "magenta", **kw)


PIANO = (0.0, 1.0, 60, 127, 0, False)
DRUM = (0.5, 0.51, 36, 127, 0, True)


def test_style_name():
    assert "magenta" in codec.MIDI_STYLES
    with pytest.raises(ValueError, match="magenta"):
        notes_to_midi([PIANO], "note_seq")


# ------------------------------------------------------------ spec examples
def test_spec_example_bytes():
    # magenta-t5x §5.8: note list drum 36 [0.50, 0.51] then program 0 pitch 60 [0, 1]
    expect = (HDR("4D 54 68 64 00 00 00 06 00 01 00 03 00 DC".replace(" ", ""))
              + track(HDR("00 FF 51 03 07 A1 20 00 FF 58 04 04 02 18 08 01 FF 2F 00"
                          .replace(" ", "")))
              + track(HDR("00 C0 00 00 90 3C 7F 83 38 3C 00 01 FF 2F 00".replace(" ", "")))
              + track(HDR("00 FF 03 05 44 72 75 6D 73 00 C9 00 81 5C 99 24 7F 04 24 00 01 FF 2F 00"
                          .replace(" ", ""))))
    assert magenta([DRUM, PIANO]) == expect
    assert RM.magenta_midi([DRUM, PIANO]) == expect
    # same tracks for the other note order: instrument 0 is still the piano
    assert magenta([PIANO, DRUM]) == expect
    # versus the PRETTY writer: drums first there, piano on channel 1, no name
    assert notes_to_midi(notes_arr(DRUM, PIANO), "pretty", auto_filter=False) != expect
    RM.check_midi(expect)


def test_empty_sequence_two_tracks():
    expect = header(2) + track(TIMING) + track(EMPTY_PROGRAM_0)
    assert notes_to_midi(np.zeros(0, NOTE_DTYPE), "magenta") == expect
    assert notes_to_midi([], "magenta", auto_filter=False) == expect
    assert RM.magenta_midi([]) == expect


def test_drums_only():
    # empty program-0 track + one Drums track; 0.51 s -> 224.4 -> 224, 1.01 -> 444
    notes = [(0.5, 0.51, 36, 127, 0, True), (1.0, 1.01, 38, 100, 0, True)]
    drums = (HDR("00FF0305") + b"Drums" + HDR("00C900") + HDR("815C99247F") + HDR("042400")
             + HDR("8158" "2664") + HDR("042600") + HDR("01FF2F00"))
    expect = header(3) + track(TIMING) + track(EMPTY_PROGRAM_0) + track(drums)
    assert magenta(notes) == expect
    assert RM.magenta_midi(notes) == expect
    # auto_filter is not part of this writer (it would keep drums only anyway)
    assert magenta(notes, auto_filter=False) == expect
    # YourMT3's drum program 128 is written as program 0
    assert magenta([n[:4] + (128, True) for n in notes]) == expect


def test_ten_programs():
    # instruments in first-appearance order: 0..8, then 10 (9 is the drums)
    progs = [40, 0, 33, 24, 56, 65, 73, 81, 89, 104]
    notes = [(0.1 * i, 0.1 * i + 0.3, 50 + i, 127, p, False) for i, p in enumerate(progs)]
    notes.insert(3, (0.25, 0.26, 42, 127, 0, True))
    got = magenta(notes)
    assert got == RM.magenta_midi(notes)
    mid = RM.check_midi(got)
    assert mid.ticks_per_beat == 220 and len(mid.tracks) == 1 + 11
    tracks = mid.tracks[1:]
    names = [tr[0].name if tr[0].type == "track_name" else "" for tr in tracks]
    assert names == ["", "Acoustic Grand Piano", "Electric Bass (finger)", "Acoustic Guitar (nylon)",
                     "Trumpet", "Alto Sax", "Flute", "Lead 2 (sawtooth)", "Pad 2 (warm)",
                     "Drums", "Sitar"]
    pcs = [next(m for m in tr if m.type == "program_change") for tr in tracks]
    assert [m.program for m in pcs] == progs[:9] + [0, 104]
    assert [m.channel for m in pcs] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11]  # C[10] = 11
    # each track holds its own notes only
    for tr, pc in zip(tracks, pcs):
        assert {m.channel for m in tr if m.type == "note_on"} == {pc.channel}
    # the first track (instrument 0 = program 40) has no name and starts 00 C0 28
    first = got.index(b"MTrk", 14 + 8 + len(TIMING)) + 8
    assert got[first:first + 3] == HDR("00C028")


def test_channels_wrap_past_fifteen_instruments():
    # 18 programs + drums: track n uses C[n mod 15]; instruments 0..8, drums, 10..18
    progs = list(range(0, 18 * 7, 7))
    notes = [(0.05 * i, 0.05 * i + 0.1, 60, 90, p, False) for i, p in enumerate(progs)]
    notes.append((0.0, 0.01, 36, 90, 0, True))
    got = magenta(notes)
    assert got == RM.magenta_midi(notes)
    mid = RM.check_midi(got)
    chans = [next(m for m in tr if m.type == "program_change").channel for tr in mid.tracks[1:]]
    gm = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]
    assert chans == [9 if n == 9 else gm[n % 15] for n in range(19)]


def test_instrument_numbers_follow_note_list_order():
    # the program that appears first owns instrument 0 and the first track
    a = (0.0, 0.5, 60, 127, 33, False)
    b = (0.2, 0.7, 64, 127, 0, False)
    mid_ab = parse(magenta([a, b]))
    mid_ba = parse(magenta([b, a]))
    pc = lambda mid: [next(m for m in tr if m.type == "program_change").program  # noqa: E731
                      for tr in mid.tracks[1:]]
    assert pc(mid_ab) == [33, 0] and pc(mid_ba) == [0, 33]
    assert mid_ab.tracks[2][0].name == "Acoustic Grand Piano"
    assert mid_ba.tracks[2][0].name == "Electric Bass (finger)"


def test_several_drum_programs_sorted():
    # drum keys (9, program, True) sort by program; each is its own 'Drums' track
    notes = [(0.0, 0.01, 36, 127, 9, True), (0.1, 0.11, 38, 127, 0, True),
             (0.2, 0.5, 60, 127, 5, False), (0.3, 0.31, 40, 127, 128, True)]
    got = magenta(notes)
    assert got == RM.magenta_midi(notes)
    mid = RM.check_midi(got)
    assert [tr[0].name for tr in mid.tracks[2:]] == ["Drums", "Drums"]
    assert [tr[1].program for tr in mid.tracks[2:]] == [0, 9]
    assert sum(1 for m in mid.tracks[2] if m.type == "note_on" and m.velocity) == 2


def test_velocities_as_given_and_flags_ignored():
    notes = [(0.0, 0.5, 60, 1, 0, False), (0.5, 1.0, 61, 100, 0, False),
             (0.5, 0.51, 36, 0, 0, True)]
    got = magenta(notes)
    vels = [m.velocity for m in parse(got).tracks[1] if m.type == "note_on"]
    assert vels == [1, 0, 100, 0]
    assert got == RM.magenta_midi(notes)
    for kw in ({"auto_filter": True}, {"auto_filter": False}, {"corrected": True},
               {"flags": codec.MIDI_AUTO_FILTER}):
        assert magenta(notes, **kw) == got


def test_track_name_first_at_tick_zero():
    # notes at tick 0 sort after the track name (pretty_midi's comparator ties them)
    notes = [(0.0, 0.0, 70, 80, 0, True), (0.0, 0.2, 20, 90, 0, True),
             (0.0, 0.3, 40, 90, 41, False), (0.0, 0.0, 41, 90, 41, False)]
    got = magenta(notes)
    assert got == RM.magenta_midi(notes)
    for tr in parse(got).tracks[2:]:
        assert tr[0].type == "track_name" and tr[1].type == "program_change"


# ---------------------------------------------------------- random vs reference
def random_notes(rng, n):
    out = []
    n_progs = int(rng.integers(1, 20))
    progs = rng.choice(128, size=n_progs, replace=False).tolist()
    grid = [None, 0.01, 1 / 440, 1 / 960][int(rng.integers(0, 4))]
    for _ in range(n):
        if grid:
            on = int(rng.integers(0, 400)) * grid
            off = on + int(rng.integers(0, 60)) * grid
        else:
            on = float(rng.choice([0.0, rng.uniform(0, 5), rng.uniform(0, 0.02)]))
            off = on + float(rng.choice([0.0, 0.01, rng.uniform(0, 2)]))
        drum = bool(rng.random() < 0.25)
        prog = int(rng.choice([0, 0, 9, 128])) if drum else int(rng.choice(progs))
        out.append((on, off, int(rng.integers(0, 128)), int(rng.integers(0, 128)), prog, drum))
    return out


def test_random_notes_match_reference():
    rng = np.random.default_rng(58)
    for trial in range(240):
        notes = random_notes(rng, int(rng.integers(0, 50)))
        got = magenta(notes)
        assert got == RM.magenta_midi(notes), (trial, notes)
        # (no check_midi: zero-length and velocity-0 notes give a lone velocity-0
        # note_on, as pretty_midi writes them)
        assert all(m.time >= 0 for tr in parse(got).tracks for m in tr)


def test_decoded_notes_end_to_end():
    # Magenta's decoding (the mt3_pytorch scheme in its own order) -> this writer
    import test_notes as TN

    rng = np.random.default_rng(85)
    for trial in range(30):
        toks = TN.random_mt3_tokens(rng, int(rng.integers(1, 5)), 60)
        notes = codec.decode_tokens(toks, "mt3_pytorch", sort=False)
        ref_notes = R.decode(toks.tolist(), "mt3_pytorch", None, False)
        assert TN.as_tuples(notes) == ref_notes
        assert notes_to_midi(notes, "magenta") == RM.magenta_midi(ref_notes), trial


@pytest.mark.parametrize("bad,msg", [
    ((float("nan"), 1.0, 60, 100, 0, False), "finite"),
    ((-0.5, 1.0, 60, 100, 0, False), "negative"),
    ((1.0, 0.5, 60, 100, 0, False), "before onset"),
    ((0.0, 1.0, 128, 100, 0, False), "pitch"),
    ((0.0, 1.0, 60, 128, 0, False), "velocity"),
    ((0.0, 1.0, 60, 100, 128, False), "program"),
    ((0.0, 1.0, 60, 100, 129, True), "program"),
])
def test_validation(bad, msg):
    with pytest.raises(ValueError, match=msg):
        magenta([PIANO, bad])


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
note = st.tuples(st.one_of(st.floats(0, 30), st.sampled_from([0.0, 0.01, 1 / 440, 0.5])),
                 st.floats(0, 3), st.integers(0, 127), st.integers(0, 127),
                 st.integers(0, 127), st.booleans())


@FUZZ
@given(ns=st.lists(note, max_size=16))
def test_fuzz_notes(ns):
    notes = [(on, on + d, p, v, g, dr) for on, d, p, v, g, dr in ns]
    got = magenta(notes)
    assert got == RM.magenta_midi(notes)
    mid = parse(got)
    assert len(mid.tracks) == 2 + len({(g, dr) for _, _, _, _, g, dr in notes}) - \
        any(not dr for *_, dr in notes)


# ------------------------------------------- the reference against pretty_midi
def note_seq_pretty_midi(pretty_midi, notes):
    """note_seq.note_sequence_to_pretty_midi on a NoteSequence with these notes
    (instruments from assign_instruments, ticks_per_quarter 220, no tempos)."""
    pm = pretty_midi.PrettyMIDI(resolution=220, initial_tempo=120.0)
    instrument = pretty_midi.Instrument(0)
    pm.instruments.append(instrument)
    events = {}
    for (on, off, pitch, vel, prog, drum), inst in zip(notes, RM.assign_instruments(notes)):
        events.setdefault((inst, prog, drum), []).append(
            pretty_midi.Note(velocity=vel, pitch=pitch, start=on, end=off))
    for inst, prog, drum in sorted(events):
        if inst > 0:
            name = "Drums" if drum else pretty_midi.program_to_instrument_name(prog)
            instrument = pretty_midi.Instrument(prog, drum, name)
            pm.instruments.append(instrument)
        else:
            instrument.is_drum = drum
        instrument.program = prog
        instrument.notes = events[(inst, prog, drum)]
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def test_reference_equals_pretty_midi():
    pretty_midi = pytest.importorskip("pretty_midi")
    rng = np.random.default_rng(13)
    for trial in range(60):
        notes = [n[:4] + (0 if n[4] > 127 else n[4], n[5])
                 for n in random_notes(rng, int(rng.integers(0, 40)))]
        expect = note_seq_pretty_midi(pretty_midi, notes)
        assert RM.magenta_midi(notes) == expect, trial
        assert magenta(notes) == expect, trial
    for notes in ([DRUM, PIANO], []):
        assert magenta(notes) == note_seq_pretty_midi(pretty_midi, notes)


def test_every_program_name_equals_pretty_midi():
    """Each General MIDI program as a second instrument (its track is named):
    the C writer's name table against pretty_midi's bytes for all 128."""
    pretty_midi = pytest.importorskip("pretty_midi")
    for prog in range(128):
        notes = [(0.0, 0.5, 60, 100, (prog + 1) % 128, False), (0.25, 1.0, 64, 90, prog, False)]
        assert magenta(notes) == note_seq_pretty_midi(pretty_midi, notes), prog

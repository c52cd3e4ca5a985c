"""Token -> note decoding: worked examples of the specs, C vs the plain-Python
reference (tests/ref_decode.py) on random and adversarial streams, encoder round
trips, corrected variants, input validation and fuzzing."""
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mt3_infer import AudioError, codec
from mt3_infer.codec import NOTE_DTYPE, decode_tokens

import ref_decode as R

# ------------------------------------------------------------------ helpers
E = R.encode_event  # E("mt3", "shift", 50) -> raw id


def m(name, v=0):
    return R.encode_event("mt3", name, v)


def y(name, v=0):
    return R.encode_event("yourmt3", name, v)


def rows(*segs, pad=0):
    width = max(len(s) for s in segs)
    return np.array([list(s) + [pad] * (width - len(s)) for s in segs], dtype=np.int64)


def as_tuples(arr):
    return [(float(r["onset"]), float(r["offset"]), int(r["pitch"]), int(r["velocity"]),
             int(r["program"]), bool(r["is_drum"])) for r in arr]


def c_notes(tokens, scheme, starts=None, corrected=False, flags=0):
    return as_tuples(decode_tokens(tokens, scheme, starts, corrected=corrected, flags=flags,
                                   sort=False))


def ref_notes(tokens, scheme, starts=None, corrected=False):
    toks = np.asarray(tokens).tolist()
    return R.decode(toks, scheme, None if starts is None else list(starts), corrected)


# ------------------------------------------------------- §6.5 worked example
EX_SEG1 = [1135, 1064, 1134, 53, 1133, 1135, 1068, 1299, 103, 1132, 1135, 1064, 1]
# a first segment leaving (60,0) active from 1.50 and (67,0) from 1.90, velocity 127
EX_SEG0 = [m("tie"), m("shift", 150), m("velocity", 1), m("program", 0), m("pitch", 60),
           m("shift", 190), m("pitch", 67), 1]


def test_worked_example_ids_are_the_spec_events():
    assert [R.decode_id("mt3", i) for i in EX_SEG1] == [
        ("program", 0), ("pitch", 60), ("tie", 0), ("shift", 50), ("velocity", 1),
        ("program", 0), ("pitch", 64), ("drum", 36), ("shift", 100), ("velocity", 0),
        ("program", 0), ("pitch", 60), ("eos", 0)]


def test_worked_example_mt3_pytorch():
    S = 2.04
    got = c_notes(rows(EX_SEG0, EX_SEG1), "mt3_pytorch")
    expect = [
        (0 + 190 / 100, S, 67, 127, 0, False),             # tie closes (67,0) at 2.04
        (S + 50 / 100, S + 50 / 100 + 0.01, 36, 127, 0, True),  # drum 10 ms
        (0 + 150 / 100, S + 100 / 100, 60, 127, 0, False),  # note-off at S + 1.00 (absolute)
        (S + 50 / 100, S + 100 / 100, 64, 127, 0, False),   # flushed at current time 3.04
    ]
    assert got == expect
    assert [round(x, 6) for x in got[2][:2]] == [1.5, 3.04]
    assert ref_notes(rows(EX_SEG0, EX_SEG1), "mt3_pytorch") == expect


def test_worked_example_mr_mt3():
    S = 2.048
    got = c_notes(rows(EX_SEG0, EX_SEG1), "mr_mt3")
    expect = [
        (190 / 100, S, 67, 127, 0, False),
        (150 / 100, S + 100 / 100, 60, 127, 0, False),
        (S + 50 / 100, S + 100 / 100, 64, 127, 0, False),  # per-note flush end
        (S + 50 / 100, S + 100 / 100, 36, 127, 9, True),   # drum sustained under (36, 9)
    ]
    assert got == expect
    assert [round(got[1][1], 6), round(got[2][0], 6)] == [3.048, 2.548]
    assert ref_notes(rows(EX_SEG0, EX_SEG1), "mr_mt3") == expect


def test_sorted_output_order():
    arr = decode_tokens(rows(EX_SEG0, EX_SEG1), "mt3_pytorch")
    assert arr.dtype == NOTE_DTYPE
    keys = [(r["onset"], r["pitch"], r["program"]) for r in arr]
    assert keys == sorted(keys)
    assert len(arr) == 4


# ----------------------------------------------------- specific rules (§6, §12)
def test_shift_absolute_and_zero_shift_resets():
    # shift 100, pitch, shift 0 -> back to segment start -> earlier event rejected
    seg = [m("tie"), m("velocity", 1), m("shift", 100), m("pitch", 60), m("shift", 0),
           m("pitch", 62), m("shift", 150), m("velocity", 0), m("pitch", 60), 1]
    for scheme in ("mt3_pytorch", "mr_mt3"):
        got = c_notes(rows(seg), scheme)
        assert got == ref_notes(rows(seg), scheme)
        assert [(n[2], round(n[0], 6), round(n[1], 6)) for n in got] == [(60, 1.0, 1.5)]


def test_consecutive_shifts_add_up():
    seg = [m("tie"), m("velocity", 1), m("shift", 1000), m("shift", 500), m("pitch", 60), 1]
    for scheme in ("mt3_pytorch", "mr_mt3"):
        got = c_notes(rows(seg), scheme)
        assert [round(n[0], 6) for n in got] == [15.0]


def test_late_event_drop_rule_vs_mrmt3():
    # mt3-family §6.4: an event at shift 205 in segment 0 lands after the next start
    seg0 = [m("tie"), m("velocity", 1), m("program", 0), m("pitch", 60), m("shift", 205),
            m("pitch", 64), 1]
    seg1 = [m("program", 0), m("pitch", 60), m("tie"), m("velocity", 1), m("shift", 10),
            m("pitch", 67), 1]
    seg2 = [m("tie"), m("shift", 20), m("velocity", 0), m("program", 0), m("pitch", 67), 1]
    toks = rows(seg0, seg1, seg2)
    py = c_notes(toks, "mt3_pytorch")  # drops pitch 64, ties 60, plays 67
    assert sorted(n[2] for n in py) == [60, 67]
    mr = c_notes(toks, "mr_mt3")       # 2.05 > 2.048: next tie rejected, 67 lost
    assert 64 in [n[2] for n in mr] and 67 not in [n[2] for n in mr]
    assert py == ref_notes(toks, "mt3_pytorch") and mr == ref_notes(toks, "mr_mt3")
    # corrected MR-MT3 applies the drop rule: same pitches as Magenta
    fixed = c_notes(toks, "mr_mt3", corrected=True)
    assert sorted(n[2] for n in fixed) == [60, 67]
    assert fixed == ref_notes(toks, "mr_mt3", corrected=True)
    only_drop = c_notes(toks, "mr_mt3", flags=codec.DECODE_MRMT3_DROP_RULE)
    assert only_drop == R.decode_mt3(toks.tolist(), "mr_mt3", drop_rule=True,
                                     magenta_drums=False)


def test_drop_rule_double_arithmetic_boundaries():
    # mt3-family §6.4: an event landing mathematically on the next floored start is
    # dropped when start_i + k/100 rounds above it: 39 of the first 199 boundaries.
    starts = codec.default_segment_starts("mt3_pytorch", 200)
    dropped = 0
    for i in range(199):
        k = round(starts[i + 1] * 100) - round(starts[i] * 100)
        seg0 = [m("tie"), m("velocity", 1), m("shift", k), m("pitch", 60), 1]
        seg1 = [m("tie"), 1]
        got = c_notes(rows(seg0, seg1), "mt3_pytorch", starts=[starts[i], starts[i + 1]])
        expect_drop = starts[i] + k / 100 > starts[i + 1]
        assert (len(got) == 0) == expect_drop
        dropped += expect_drop
    assert dropped == 39


def test_max_time_zero_means_no_limit():
    # `if max_time and ...`: a next start of 0.0 disables the drop rule
    seg0 = [m("tie"), m("velocity", 1), m("shift", 300), m("pitch", 60), 1]
    seg1 = [m("tie"), 1]
    toks = rows(seg0, seg1)
    got = c_notes(toks, "mt3_pytorch", starts=[0.0, 0.0])
    assert [n[2] for n in got] == [60]
    assert got == ref_notes(toks, "mt3_pytorch", starts=[0.0, 0.0])
    got = c_notes(toks, "mt3_pytorch", starts=[0.0, 1.0])
    assert got == []


def test_missing_tie_keeps_tie_section():
    # a segment without tie stays in its tie section: pitch events are tie declarations
    seg0 = [m("tie"), m("velocity", 1), m("program", 0), m("pitch", 60), 1]
    seg1 = [m("shift", 10), m("velocity", 0), m("pitch", 60), m("pitch", 62), 1]
    toks = rows(seg0, seg1)
    for scheme in ("mt3_pytorch", "mr_mt3"):
        got = c_notes(toks, scheme)
        assert got == ref_notes(toks, scheme)
        assert len(got) == 1 and got[0][2] == 60
    # Magenta: flushed at the common end max(current time, onset + 10 ms)
    assert round(c_notes(toks, "mt3_pytorch")[0][1], 6) == 2.14


def test_unk_pad_eos_handling():
    # UNK: MT3-PyTorch cuts the row, MR-MT3 skips it; PAD before EOS is an invalid event
    seg = [m("tie"), m("velocity", 1), 0, m("pitch", 60), 2, m("shift", 10), m("pitch", 62), 1,
           m("pitch", 64)]
    toks = rows(seg)
    assert [n[2] for n in c_notes(toks, "mt3_pytorch")] == [60]
    assert sorted(n[2] for n in c_notes(toks, "mr_mt3")) == [60, 62]
    for scheme in ("mt3_pytorch", "mr_mt3"):
        assert c_notes(toks, scheme) == ref_notes(toks, scheme)


def test_invalid_ids_skipped():
    seg = [m("tie"), m("velocity", 1), 1391, 1490, 1491, 1535, -7, 10**15, m("pitch", 60), 1]
    for scheme in ("mt3_pytorch", "mr_mt3"):
        assert [n[2] for n in c_notes(rows(seg), scheme)] == [60]


def test_empty_segments():
    # MR-MT3 omits rows without tokens (no tie section for them); Magenta keeps them
    seg0 = [m("tie"), m("velocity", 1), m("pitch", 60), 1]
    empty = [1]
    seg2 = [m("pitch", 60), m("tie"), m("shift", 10), m("velocity", 0), m("pitch", 60), 1]
    toks = rows(seg0, empty, seg2)
    for scheme in ("mt3_pytorch", "mr_mt3"):
        assert c_notes(toks, scheme) == ref_notes(toks, scheme)
    assert c_notes(np.zeros((0, 5), np.int64), "mt3_pytorch") == []
    assert c_notes(np.zeros((3, 0), np.int64), "mr_mt3") == []
    assert c_notes(np.zeros((0, 13, 4), np.int64), "yourmt3") == []


def test_re_onset_same_time_and_min_duration():
    seg = [m("tie"), m("velocity", 1), m("shift", 10), m("pitch", 60), m("pitch", 60),
           m("shift", 50), m("velocity", 0), m("pitch", 60), 1]
    got = c_notes(rows(seg), "mt3_pytorch")
    assert got == ref_notes(rows(seg), "mt3_pytorch")
    assert [(round(a, 6), round(b, 6)) for a, b, *_ in got] == [(0.1, 0.11), (0.1, 0.5)]


def test_drum_velocity_zero():
    seg = [m("tie"), m("velocity", 1), m("drum", 36), m("shift", 20), m("velocity", 0),
           m("drum", 36), m("drum", 38), 1]
    py = c_notes(rows(seg), "mt3_pytorch")
    assert [(n[2], round(n[1] - n[0], 6)) for n in py] == [(36, 0.01)]
    mr = c_notes(rows(seg), "mr_mt3")
    assert [(n[2], round(n[0], 6), round(n[1], 6), n[5]) for n in mr] == [(36, 0.0, 0.2, True)]
    fixed = c_notes(rows(seg), "mr_mt3", corrected=True)
    assert fixed == py  # Magenta's drums (starts are 0 for both)


def test_mrmt3_program9_collision_and_fix():
    # a drum onset closes an open glockenspiel (program 9) note as a drum note
    seg = [m("tie"), m("velocity", 1), m("program", 9), m("pitch", 40), m("shift", 30),
           m("drum", 40), m("shift", 40), m("velocity", 0), m("program", 9), m("pitch", 40), 1]
    toks = rows(seg)
    mr = c_notes(toks, "mr_mt3")
    assert mr == ref_notes(toks, "mr_mt3")
    assert [(n[4], n[5]) for n in mr] == [(0, True), (9, False)]
    fixed = c_notes(toks, "mr_mt3", flags=codec.DECODE_MRMT3_MAGENTA_DRUMS)
    assert fixed == R.decode_mt3(toks.tolist(), "mr_mt3", drop_rule=False, magenta_drums=True)
    assert sorted((n[4], n[5]) for n in fixed) == [(0, True), (9, False)]
    glock = [n for n in fixed if not n[5]][0]
    assert (round(glock[0], 6), round(glock[1], 6)) == (0.0, 0.4)
    # flush: a still-open glockenspiel note becomes a drum note (program 9)
    seg = [m("tie"), m("velocity", 1), m("program", 9), m("pitch", 72), 1]
    assert [(n[4], n[5]) for n in c_notes(rows(seg), "mr_mt3")] == [(9, True)]
    assert [(n[4], n[5]) for n in c_notes(rows(seg), "mr_mt3", corrected=True)] == [(9, False)]


def test_tie_closure_of_drum_key_mrmt3():
    seg0 = [m("tie"), m("velocity", 1), m("drum", 36), 1]
    seg1 = [m("tie"), 1]
    got = c_notes(rows(seg0, seg1), "mr_mt3")
    assert got == [(0.0, 2.048, 36, 127, 0, True)]


def test_velocity_program_persist_across_segments():
    seg0 = [m("tie"), m("velocity", 0), m("program", 33), 1]
    seg1 = [m("tie"), m("pitch", 40), m("velocity", 1), m("pitch", 41), 1]
    toks = rows(seg0, seg1)
    for scheme in ("mt3_pytorch", "mr_mt3"):
        got = c_notes(toks, scheme)
        assert got == ref_notes(toks, scheme)
        assert [(n[2], n[4]) for n in got] == [(41, 33)]


def test_flush_end_times():
    seg = [m("tie"), m("velocity", 1), m("pitch", 60), m("shift", 100), m("pitch", 62),
           m("shift", 101), m("program", 1), 1]
    py = c_notes(rows(seg), "mt3_pytorch")
    mr = c_notes(rows(seg), "mr_mt3")
    assert {round(n[1], 6) for n in py} == {1.01}  # common T
    assert {round(n[1], 6) for n in mr} == {1.01}
    seg = [m("tie"), m("velocity", 1), m("pitch", 60), m("shift", 100), m("pitch", 62), 1]
    py = c_notes(rows(seg), "mt3_pytorch")
    mr = c_notes(rows(seg), "mr_mt3")
    assert [round(n[1], 6) for n in py] == [1.01, 1.01]  # T = max(1.0, 1.0 + 0.01)
    assert [round(n[1], 6) for n in mr] == [1.0, 1.01]   # per note


def test_custom_unsorted_starts():
    seg_a = [m("tie"), m("velocity", 1), m("pitch", 60), 1]
    seg_b = [m("tie"), m("shift", 5), m("velocity", 0), m("pitch", 60), 1]
    toks = rows(seg_b, seg_a)
    starts = [3.0, 1.0]
    for scheme in ("mt3_pytorch", "mr_mt3"):
        got = c_notes(toks, scheme, starts=starts)
        assert got == ref_notes(toks, scheme, starts=starts)
        assert [(n[0], round(n[1], 6)) for n in got] == [(1.0, 3.0)]


# ------------------------------------------------------ random / adversarial
MT3_INTERESTING = (
    [0, 1, 2, 3, 4, 5, 13, 103, 203, 207, 208, 1003, 1004, 1131, 1132, 1133, 1134, 1135, 1262,
     1263, 1390, 1391, 1490, 1491, 1535, 1536, -1, -3, -(2**63), 2**63 - 1]
    + [m("pitch", p) for p in (40, 60, 61, 62)]
    + [m("program", p) for p in (0, 9, 33)]
    + [m("drum", d) for d in (36, 40, 60)]
)


def random_mt3_tokens(rng, nseg, length):
    kinds = rng.integers(0, 10, size=(nseg, length))
    out = np.empty((nseg, length), np.int64)
    for i in range(nseg):
        for j in range(length):
            k = kinds[i, j]
            if k == 0:
                out[i, j] = rng.choice(MT3_INTERESTING)
            elif k == 1:
                out[i, j] = m("shift", int(rng.choice([0, 1, 2, 10, 50, 100, 204, 205, 206, 1000])))
            elif k == 2:
                out[i, j] = m("shift", int(rng.integers(0, 60)))
            elif k in (3, 4):
                out[i, j] = m("pitch", int(rng.choice([40, 60, 61, 62, 0, 127])))
            elif k == 5:
                out[i, j] = m("velocity", int(rng.integers(0, 2)))
            elif k == 6:
                out[i, j] = m("tie")
            elif k == 7:
                out[i, j] = m("program", int(rng.choice([0, 9, 33, 127])))
            elif k == 8:
                out[i, j] = m("drum", int(rng.choice([36, 40, 60, 0, 127])))
            else:
                out[i, j] = int(rng.integers(-5, 1540))
    # a tie near the start of most rows, EOS + PAD at the end of some
    for i in range(nseg):
        if length > 2 and rng.random() < 0.7:
            out[i, rng.integers(0, 3)] = m("tie")
        if length > 4 and rng.random() < 0.6:
            e = int(rng.integers(length // 2, length))
            out[i, e] = 1
            out[i, e + 1:] = 0
    return out


@pytest.mark.parametrize("scheme", ["mt3_pytorch", "mr_mt3"])
@pytest.mark.parametrize("corrected", [False, True])
def test_random_streams_match_reference(scheme, corrected):
    rng = np.random.default_rng(1234 + corrected)
    for trial in range(120):
        nseg = int(rng.integers(1, 6))
        length = int(rng.integers(0, 60))
        toks = random_mt3_tokens(rng, nseg, length)
        starts = None
        if trial % 3 == 1:
            starts = rng.choice([0.0, 1.0, 2.04, 2.048, 2.05, 4.1], size=nseg)
        got = c_notes(toks, scheme, starts, corrected=corrected)
        assert got == ref_notes(toks, scheme, starts, corrected), (trial, toks.tolist(), starts)


def random_ymt3_tokens(rng, nseg, length):
    out = np.zeros((nseg, 13, length), np.int64)
    pool = ([0, 1, 2, 3, 4, 208, 209, 336, 337, 338, 339, 340, 467, 468, 595]
            + [y("pitch", p) for p in (60, 61, 62)] + [y("program", p) for p in (0, 1, 33, 100)]
            + [y("drum", 36)])
    for i in range(nseg):
        for c in rng.choice(13, size=int(rng.integers(1, 5)), replace=False):
            row = []
            if rng.random() < 0.5:
                row += [y("program", int(rng.choice([0, 1, 33]))), y("pitch", int(rng.choice([60, 61])))]
            if rng.random() < 0.8:
                row.append(y("tie"))
            while len(row) < length:
                k = rng.integers(0, 8)
                if k == 0:
                    row.append(int(rng.choice(pool)))
                elif k == 1:
                    row.append(y("shift", int(rng.choice([0, 1, 5, 100, 204, 205]))))
                elif k == 2:
                    row.append(y("shift", int(rng.integers(0, 206))))
                elif k in (3, 4):
                    row.append(y("pitch", int(rng.choice([60, 61, 62]))))
                elif k == 5:
                    row.append(y("velocity", int(rng.integers(0, 2))))
                elif k == 6:
                    row.append(y("program", int(rng.choice([0, 1, 33, 40, 41, 100, 127]))))
                else:
                    row.append(y("drum", int(rng.choice([36, 38]))))
            row = row[:length]
            if length > 3 and rng.random() < 0.5:
                e = int(rng.integers(length // 2, length))
                row[e:] = [1] + [0] * (length - e - 1)
            out[i, c] = row
    return out


@pytest.mark.parametrize("corrected", [False, True])
def test_random_yourmt3_match_reference(corrected):
    rng = np.random.default_rng(99 + corrected)
    for trial in range(60):
        nseg = int(rng.integers(1, 5))
        length = int(rng.integers(0, 40))
        toks = random_ymt3_tokens(rng, nseg, length)
        starts = None
        if trial % 4 == 3:
            starts = sorted(rng.choice([0.0, 0.005, 1.0, 2.0479375, 2.05, 163.835], size=nseg))
        got = c_notes(toks, "yourmt3", starts, corrected=corrected)
        assert got == ref_notes(toks, "yourmt3", starts, corrected), (trial, toks.tolist())


# ----------------------------------------------------------- YourMT3 examples
def ymt3_tokens(channel_rows, nseg=None, length=None):
    """channel_rows: {(segment, channel): [ids]} -> (segments, 13, length) array"""
    nseg = nseg or 1 + max(s for s, _ in channel_rows)
    length = length or max(len(r) for r in channel_rows.values())
    out = np.zeros((nseg, 13, length), np.int64)
    for i in range(nseg):
        for c in range(13):
            out[i, c, :2] = [339, 1]  # empty channel: tie EOS
    for (s, c), r in channel_rows.items():
        out[s, c] = 0
        out[s, c, : len(r)] = r
    return out


def test_yourmt3_example_1():
    toks = ymt3_tokens({(0, 0): [339, 53, 340, 338, 269, 103, 337, 269, 1, 0, 0]})
    got = c_notes(toks, "yourmt3")
    assert got == [(0.5, 1.0, 60, 100, 0, False)]
    assert got == ref_notes(toks, "yourmt3")


def test_yourmt3_example_2_tie_across_boundary():
    seg0 = [339, 53, 340, 338, 269, 1]
    seg1 = [340, 269, 339, 33, 337, 269, 1]
    toks = ymt3_tokens({(0, 0): seg0, (1, 0): seg1})
    assert c_notes(toks, "yourmt3") == [(0.5, 2.35, 60, 100, 0, False)]
    # without the tie entry: forced offset at the un-rounded start 2.0479375
    toks = ymt3_tokens({(0, 0): seg0, (1, 0): [339, 33, 337, 269, 1]})
    got = c_notes(toks, "yourmt3")
    assert got == [(0.5, 2.0479375, 60, 100, 0, False)]
    assert got == ref_notes(toks, "yourmt3")


def test_yourmt3_example_3_drums():
    toks = ymt3_tokens({(0, 12): [339, 13, 338, 504, 1]})
    got = c_notes(toks, "yourmt3")
    assert got == [(0.1, 0.1 + 0.01, 36, 100, 128, True)]


def test_yourmt3_half_even_start_ticks():
    # yourmt3 §10 #8: segment 80 -> 16383.5 -> 16384, segment 240 -> 49150.5 -> 49150
    for seg, tick in ((80, 16384), (240, 49150)):
        toks = ymt3_tokens({(seg, 12): [339, 4, 504, 1]}, nseg=seg + 1, length=5)
        got = c_notes(toks, "yourmt3")
        assert got == [((tick + 1) / 100, (tick + 1) / 100 + 0.01, 36, 100, 128, True)]


def test_yourmt3_rules():
    # rows without tie are discarded, EOS in phase A ignored, shift 0 ignored,
    # offsets without onsets dropped, notes > 10 s cut to 10 ms, programs remapped
    cases = [
        [1, 339, 13, 340, 338, 269, 1],                      # EOS before tie: ignored
        [13, 339, 340, 338, 269, 1],                         # shift before tie: no tie
        [339, 340, 338, 13, 269, 3, 269, 1],                 # shift 0 ignored -> re-onset
        [339, 341, 337, 269, 338, 13, 270, 1],               # off without on dropped
        [339, 340, 338, 13, 269, 108, 3, 2, 0, 269, 1],      # backwards shift accepted
    ]
    for row in cases:
        toks = ymt3_tokens({(0, 3): row})
        assert c_notes(toks, "yourmt3") == ref_notes(toks, "yourmt3"), row
    # > 10 s: onset in segment 0, offset 6 segments later
    seg0 = [339, 340, 338, 269, 1]
    cont = [340, 269, 339, 1]
    d = {(0, 0): seg0}
    for s in range(1, 6):
        d[(s, 0)] = cont
    d[(6, 0)] = [340, 269, 339, 13, 337, 269, 1]
    toks = ymt3_tokens(d)
    got = c_notes(toks, "yourmt3")
    assert got == [(0.0, 0.01, 60, 100, 0, False)]
    # gm_ext_plus remap and the no-remap view
    toks = ymt3_tokens({(0, 5): [339, 340 + 41, 338, 269, 13, 337, 269, 1]})
    assert [n[4] for n in c_notes(toks, "yourmt3")] == [48]
    assert [n[4] for n in c_notes(toks, "yourmt3", flags=codec.DECODE_YMT3_NO_REMAP)] == [41]


def test_yourmt3_corrected_trim_after_remap():
    # violin (40) and viola (41) on one pitch overlap after both map to 48
    row = [339, 340 + 40, 338, 269, 13, 340 + 41, 269, 53, 340 + 40, 337, 269, 103, 340 + 41, 269, 1]
    toks = ymt3_tokens({(0, 5): row})
    default = c_notes(toks, "yourmt3")
    assert [(n[0], n[1], n[4]) for n in default] == [(0.0, 0.5, 48), (0.1, 1.0, 48)]
    fixed = c_notes(toks, "yourmt3", corrected=True)
    assert [(n[0], n[1], n[4]) for n in fixed] == [(0.0, 0.1, 48), (0.1, 1.0, 48)]
    assert fixed == ref_notes(toks, "yourmt3", corrected=True)
    # MT3-PyTorch has nothing to correct at this stage
    toks = rows(EX_SEG0, EX_SEG1)
    assert c_notes(toks, "mt3_pytorch", corrected=True) == c_notes(toks, "mt3_pytorch")


# ------------------------------------------------------------- round trips
def random_score(rng, n_steps, programs, drums=True, max_dur=150):
    notes, busy = [], {}
    for _ in range(int(rng.integers(5, 40))):
        drum = drums and rng.random() < 0.25
        pitch = int(rng.integers(30, 90))
        prog = 0 if drum else int(rng.choice(programs))
        on = int(rng.integers(0, n_steps - 2))
        off = on + 1 if drum else min(n_steps - 1, on + int(rng.integers(1, max_dur)))
        key = (pitch, prog, drum)
        if any(not (off <= a or on >= b) for a, b in busy.get(key, [])):
            continue
        busy.setdefault(key, []).append((on, off))
        notes.append((on, off, pitch, prog, drum))
    return notes


@pytest.mark.parametrize("scheme", ["mt3_pytorch", "mr_mt3"])
def test_roundtrip_mt3(scheme):
    rng = np.random.default_rng(7)
    for _ in range(30):
        nseg = int(rng.integers(1, 5))
        starts = [round(float(s) * 100) for s in codec.default_segment_starts("mt3_pytorch", nseg)]
        total = starts[-1] + 204
        notes = random_score(rng, total, [0, 9, 33, 40] if scheme == "mt3_pytorch" else [0, 33, 40],
                             drums=scheme == "mt3_pytorch")
        toks = np.array(R.encode_mt3(notes, starts), np.int64)
        got = decode_tokens(toks, scheme, [s / 100 for s in starts])
        back = sorted((round(r["onset"] * 100), round(r["offset"] * 100), int(r["pitch"]),
                       int(r["program"]), bool(r["is_drum"])) for r in got)
        assert back == sorted(notes)
        assert set(got["velocity"].tolist()) <= {127}


def test_roundtrip_yourmt3():
    rng = np.random.default_rng(11)
    progs = [0, 2, 8, 16, 24, 29, 32, 33, 41, 57, 66, 73, 80, 88, 100, 101]
    for _ in range(20):
        nseg = int(rng.integers(1, 5))
        ticks = [round(s * 100) for s in codec.default_segment_starts("yourmt3", nseg)]
        notes = random_score(rng, ticks[-1] + 204, progs, max_dur=300)
        toks = np.array(R.encode_yourmt3(notes, ticks), np.int64)
        got = decode_tokens(toks, "yourmt3")
        back = sorted((round(r["onset"] * 100), round(r["offset"] * 100), int(r["pitch"]),
                       int(r["program"]), bool(r["is_drum"])) for r in got)
        expect = sorted((a, b, p, 128 if d else R.ymt3_head(g), d) for a, b, p, g, d in notes)
        assert back == expect


# --------------------------------------------------------------- validation
def test_validation_errors():
    ok = rows([m("tie"), 1])
    with pytest.raises(ValueError, match="integer"):
        decode_tokens(ok.astype(np.float64), "mt3_pytorch")
    with pytest.raises(ValueError, match="integer"):
        decode_tokens(ok.astype(bool), "mt3_pytorch")
    with pytest.raises(ValueError, match="shape"):
        decode_tokens(ok[0], "mt3_pytorch")
    with pytest.raises(ValueError, match="shape"):
        decode_tokens(np.zeros((2, 12, 4), np.int64), "yourmt3")
    with pytest.raises(ValueError, match="shape"):
        decode_tokens(ok, "yourmt3")
    with pytest.raises(ValueError, match="scheme"):
        decode_tokens(ok, "mt4")
    with pytest.raises(ValueError, match="segment_starts"):
        decode_tokens(ok, "mr_mt3", [0.0, 1.0])
    for bad in (float("nan"), -1.0, float("inf"), 1e12):
        with pytest.raises(ValueError, match="start"):
            decode_tokens(ok, "mr_mt3", [bad])
    with pytest.raises(ValueError, match="flags"):
        decode_tokens(ok, "mr_mt3", flags=1 << 20)
    with pytest.raises(ValueError, match="vocabulary"):
        decode_tokens(np.full((1, 13, 3), 596), "yourmt3")
    with pytest.raises(ValueError, match="vocabulary"):
        decode_tokens(np.full((1, 13, 3), -1), "yourmt3")
    assert not issubclass(ValueError, AudioError)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.int64, np.uint64])
def test_any_integer_dtype(dtype):
    toks = rows([m("tie"), m("velocity", 1), m("pitch", 60), 1])
    if np.iinfo(dtype).max < 1536:
        toks = np.array([[3, 3, 1]])  # shifts only
    a = decode_tokens(toks.astype(dtype), "mt3_pytorch")
    b = decode_tokens(toks, "mt3_pytorch")
    assert a.tolist() == b.tolist()
    # non-contiguous views work
    wide = np.repeat(toks, 2, axis=1)[:, ::2]
    assert decode_tokens(wide, "mt3_pytorch").tolist() == b.tolist()


def test_threads_give_sequential_results():
    rng = np.random.default_rng(5)
    toks = [random_mt3_tokens(rng, 8, 300) for _ in range(4)]
    expect = [decode_tokens(t, "mt3_pytorch").tolist() for t in toks]
    results = [None] * 4

    def work(i):
        results[i] = decode_tokens(toks[i], "mt3_pytorch").tolist()

    th = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    assert results == expect


# --------------------------------------------------------------- fuzzing
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ids = st.one_of(st.sampled_from(MT3_INTERESTING), st.integers(-(2**63), 2**63 - 1),
                st.integers(0, 1540))


@FUZZ
@given(data=st.lists(st.lists(ids, min_size=0, max_size=30), min_size=1, max_size=4),
       scheme=st.sampled_from(["mt3_pytorch", "mr_mt3"]), corrected=st.booleans())
def test_fuzz_mt3_ids(data, scheme, corrected):
    width = max(len(r) for r in data)
    toks = np.array([r + [0] * (width - len(r)) for r in data], dtype=np.int64).reshape(len(data), width)
    assert c_notes(toks, scheme, corrected=corrected) == ref_notes(toks, scheme, None, corrected)


@FUZZ
@given(data=st.lists(st.integers(-3, 600), min_size=0, max_size=13 * 3 * 12),
       nseg=st.integers(1, 3))
def test_fuzz_yourmt3_ids(data, nseg):
    length = len(data) // (13 * nseg)
    toks = np.array(data[: nseg * 13 * length], dtype=np.int64).reshape(nseg, 13, length)
    try:
        ref = ref_notes(toks, "yourmt3")
    except ValueError:
        with pytest.raises(ValueError):
            decode_tokens(toks, "yourmt3")
        return
    assert c_notes(toks, "yourmt3") == ref


@FUZZ
@given(arr=st.one_of(
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20),
    st.lists(st.lists(st.floats(allow_nan=True), max_size=4), max_size=3),
    st.lists(st.lists(st.lists(st.integers(-10, 700), max_size=5), max_size=13), max_size=2)),
    scheme=st.sampled_from(["mt3_pytorch", "mr_mt3", "yourmt3"]))
def test_fuzz_arbitrary_inputs_clean(arr, scheme):
    try:
        a = np.array(arr)
    except ValueError:
        return
    try:
        out = decode_tokens(a, scheme)
    except ValueError:
        return
    assert out.dtype == NOTE_DTYPE
    assert np.all(out["offset"] >= out["onset"])


def test_long_rows_match_reference():
    # many simultaneous active notes, offsets removing the first occurrence of each key
    rng = np.random.default_rng(3)
    row = [339, 340, 338]
    for _ in range(1500):
        row += [int(rng.choice([337, 338])), 209 + int(rng.integers(0, 4))]
        if rng.random() < 0.05:
            row.append(3 + int(rng.integers(0, 206)))
    row.append(1)
    toks = np.zeros((2, 13, len(row)), np.int64)
    toks[:, :, :2] = [339, 1]
    toks[0, 3] = row
    toks[1, 3, :4] = [340, 210, 339, 1]
    assert c_notes(toks, "yourmt3") == ref_notes(toks, "yourmt3")
    mt = random_mt3_tokens(rng, 2, 4000)
    for scheme in ("mt3_pytorch", "mr_mt3"):
        assert c_notes(mt, scheme) == ref_notes(mt, scheme)

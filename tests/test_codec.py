"""Vocabulary tables and id <-> event mapping (mt3-family §5, magenta-t5x §6.1,
yourmt3 §6.1), segment start-time conventions (mt3-family §2.5/§4.2,
magenta-t5x §5.2, yourmt3 §2.3/§3.1)."""
import math

import numpy as np
import pytest

import mt3_infer
from mt3_infer import _core
from mt3_infer.codec import default_segment_starts

import ref_decode as R

NAMES = _core.EVENT_TYPE_NAMES
SIZES = {"mt3": 1536, "yourmt3": 596, "magenta_piano": 1664}


def c_decode(vocab, ids):
    t, v = _core.vocab_decode(vocab, np.asarray(ids, dtype=np.int64))
    return [(NAMES[a], int(b)) for a, b in zip(t.ravel(), v.ravel())]


@pytest.mark.parametrize("vocab", ["mt3", "yourmt3", "magenta_piano"])
def test_table_matches_spec(vocab):
    table = _core.vocab_table(vocab)
    assert [(n, f, c) for n, f, c, _ in table] == R.VOCABS[vocab]
    assert all(m == 0 for *_, m in table)
    size = sum(c for _, _, c, _ in table)
    assert size == SIZES[vocab]


@pytest.mark.parametrize("vocab", ["mt3", "yourmt3", "magenta_piano"])
def test_every_id_and_out_of_range(vocab):
    size = SIZES[vocab]
    ids = list(range(-5, size + 5)) + [-(2**63), 2**63 - 1, 2**31, -(2**31) - 1, 10**12]
    assert c_decode(vocab, ids) == [R.decode_id(vocab, i) for i in ids]


def test_mt3_boundaries_from_spec():
    # mt3-family §5 table and §12 list of boundaries
    expect = {
        0: ("pad", 0), 1: ("eos", 0), 2: ("unk", 0),
        3: ("shift", 0), 1003: ("shift", 1000), 1004: ("pitch", 0), 1131: ("pitch", 127),
        1132: ("velocity", 0), 1133: ("velocity", 1), 1134: ("tie", 0), 1135: ("program", 0),
        1262: ("program", 127), 1263: ("drum", 0), 1390: ("drum", 127), 1391: ("extra", 0),
        1490: ("extra", 99), 1491: ("unused", 0), 1535: ("unused", 44),
        1536: ("out_of_range", 0), -1: ("out_of_range", 0), -3: ("out_of_range", 0),
    }
    got = c_decode("mt3", list(expect))
    assert got == list(expect.values())


def test_yourmt3_boundaries_from_spec():
    expect = {
        0: ("pad", 0), 1: ("eos", 0), 2: ("unk", 0), 3: ("shift", 0), 208: ("shift", 205),
        209: ("pitch", 0), 336: ("pitch", 127), 337: ("velocity", 0), 338: ("velocity", 1),
        339: ("tie", 0), 340: ("program", 0), 467: ("program", 127), 468: ("drum", 0),
        595: ("drum", 127), 596: ("out_of_range", 0), -1: ("out_of_range", 0),
    }
    assert c_decode("yourmt3", list(expect)) == list(expect.values())


@pytest.mark.parametrize("vocab", ["mt3", "yourmt3", "magenta_piano"])
def test_encode_roundtrip(vocab):
    size = SIZES[vocab]
    for raw in range(size):
        name, value = R.decode_id(vocab, raw)
        assert _core.vocab_encode(vocab, name, value) == raw
    # values outside the type's range have no id
    assert _core.vocab_encode(vocab, "pitch", 128) == -1
    assert _core.vocab_encode(vocab, "pitch", -1) == -1
    assert _core.vocab_encode(vocab, "shift", 206 if vocab == "yourmt3" else 1001) == -1
    assert _core.vocab_encode(vocab, "velocity", 128 if vocab == "magenta_piano" else 2) == -1
    assert _core.vocab_encode(vocab, "out_of_range", 0) == -1
    assert _core.vocab_encode(vocab, "velocity", 2**40) == -1
    with pytest.raises(ValueError):
        _core.vocab_encode(vocab, "bogus", 0)
    if vocab == "yourmt3":
        assert _core.vocab_encode(vocab, "extra", 0) == -1


def test_magenta_piano_boundaries_from_spec():
    # magenta-t5x §6.1 table (num_velocity_bins = 127)
    expect = {
        0: ("pad", 0), 1: ("eos", 0), 2: ("unk", 0),
        3: ("shift", 0), 1003: ("shift", 1000), 1004: ("pitch", 0), 1131: ("pitch", 127),
        1132: ("velocity", 0), 1133: ("velocity", 1), 1259: ("velocity", 127),
        1260: ("tie", 0), 1261: ("program", 0), 1388: ("program", 127), 1389: ("drum", 0),
        1516: ("drum", 127), 1517: ("extra", 0), 1616: ("extra", 99), 1617: ("unused", 0),
        1663: ("unused", 46), 1664: ("out_of_range", 0), -1: ("out_of_range", 0),
    }
    assert c_decode("magenta_piano", list(expect)) == list(expect.values())


def test_magenta_piano_sizes_derivation():
    # 1514 codec classes, base 1517, + 100 extra ids = 1617, padded to 128 -> 1664
    table = _core.vocab_table("magenta_piano")
    classes = sum(c for n, _, c, _ in table if n not in ("pad", "eos", "unk", "extra", "unused"))
    assert classes == 1514 == R.codec_classes("magenta_piano")
    assert 3 + classes + 100 == 1617
    assert 128 * math.ceil(1617 / 128) == 1664
    assert R.velocity_bins("magenta_piano") == 127 and R.velocity_bins("mt3") == 1
    assert "magenta_piano" in _core.VOCABS and "mt3" in _core.VOCABS


def test_codec_sizes_derivation():
    # 1388 codec classes, 1391 base, 1491 with extras, padded to 128 -> 1536 (§5)
    table = _core.vocab_table("mt3")
    classes = sum(c for n, _, c, _ in table if n not in ("pad", "eos", "unk", "extra", "unused"))
    assert classes == 1388
    assert 3 + classes + 100 == 1491
    assert 128 * math.ceil(1491 / 128) == 1536


def test_vocab_errors():
    with pytest.raises(ValueError):
        _core.vocab_decode("mt4", [1])
    with pytest.raises(ValueError):
        _core.vocab_decode("mt3", np.array([1.5]))


# ------------------------------------------------------------------ start times
def test_start_times_worked_example():
    # mt3-family §2.5: 16 s at 16 kHz -> 8 segments
    assert default_segment_starts("mr_mt3", 8).tolist() == [
        0, 2.048, 4.096, 6.144, 8.192, 10.24, 12.288, 14.336]
    assert default_segment_starts("mt3_pytorch", 8).tolist() == [
        0, 2.04, 4.09, 6.140000000000001, 8.19, 10.24, 12.280000000000001, 14.33]
    # yourmt3 §3.1: starts and their half-to-even ticks
    ys = default_segment_starts("yourmt3", 8)
    assert ys.tolist() == [0, 2.0479375, 4.095875, 6.1438125, 8.19175, 10.2396875, 12.287625,
                           14.3355625]
    assert [round(s * 100) for s in ys] == [0, 205, 410, 614, 819, 1024, 1229, 1434]


def test_start_times_magenta_worked_example():
    # magenta-t5x §5.2 step 5: mt3 as MT3-PyTorch, ismir2021 floors 4.096 i
    assert default_segment_starts("magenta", 4).tolist() == [0, 2.04, 4.09, 6.140000000000001]
    assert default_segment_starts("magenta_piano", 8).tolist() == [
        0, 4.09, 8.19, 12.280000000000001, 16.38, 20.48, 24.57, 28.67]


@pytest.mark.parametrize("scheme", ["mt3_pytorch", "mr_mt3", "yourmt3", "magenta",
                                    "magenta_piano"])
def test_start_times_match_reference(scheme):
    got = default_segment_starts(scheme, 3000)
    ref = [R.DEFAULT_START[scheme](i) for i in range(3000)]
    assert got.tolist() == ref


def test_public_reexports():
    assert mt3_infer.decode_tokens is mt3_infer.codec.decode_tokens
    assert mt3_infer.notes_to_midi is mt3_infer.codec.notes_to_midi
    assert "decode_tokens" in mt3_infer.__all__ and "notes_to_midi" in mt3_infer.__all__

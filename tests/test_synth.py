"""The synthetic-data tools of the bundled model (tools/synth, tools/train_small.py).

* the notes -> tokens encoder is the exact inverse of the C decoder's
  ``mt3_pytorch`` scheme: random clips and hand-made edge cases round-trip to
  the same notes (the reference is the input itself, not encoder output);
* data are a function of the seed: the same shard twice is byte-identical;
* the training recipe learns: a few steps of a tiny config lower the loss.
"""
import csv
import hashlib
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from synth import material, tokens  # noqa: E402

from mt3_infer.codec import decode_tokens  # noqa: E402


def _key(notes):
    out = []
    for n in notes:
        prog = 0 if n["is_drum"] else int(n["program"])
        out.append((int(round(n["onset"] * 100)), int(round(n["offset"] * 100)), int(n["pitch"]),
                    prog, bool(n["is_drum"])))
    return sorted(out)


def _segments_for(seconds):
    # mt3_reference framing: floor(N/128)+1 frames, 256 frames per segment
    n = int(round(seconds * 16000))
    return -(-(n // 128 + 1) // 256)


def _roundtrip(notes, n_seg):
    rows = tokens.encode_segments(notes, n_seg)
    for r in rows:
        assert r[-1] == tokens.EOS  # one EOS, last; no PAD/UNK inside a row
        assert (r[:-1] > 2).all() and (r[:-1] < 1391).all()
    dec = decode_tokens(tokens.pad_rows(rows), "mt3_pytorch")
    return _key(dec), rows


@pytest.mark.parametrize("seed", range(0, 400, 7))
def test_random_clips_roundtrip_through_the_c_decoder(seed):
    notes, info = material.make_clip(seed)
    got, rows = _roundtrip(notes, _segments_for(info["duration"] + 0.5))
    assert got == _key(notes)
    assert all(len(r) <= 1024 for r in rows)


def _notes(*rows):
    arr = np.zeros(len(rows), material.NOTE_DTYPE)
    for i, (on, off, p, prog, drum) in enumerate(rows):
        arr[i] = (on, off if not drum else on + 0.01, p, 100, prog, drum)
    return arr


@pytest.mark.parametrize("case", [
    # a note across one boundary (2.04 s), and one across two (4.09 s)
    [(1.50, 2.50, 60, 0, False), (0.10, 5.00, 48, 33, False)],
    # off exactly at a segment start; onset exactly at a segment start
    [(1.00, 2.04, 62, 0, False), (2.04, 2.50, 64, 0, False), (4.09, 4.20, 65, 0, False)],
    # same key re-struck at its own offset time; chords; program changes within a step
    [(0.50, 1.00, 60, 0, False), (1.00, 1.50, 60, 0, False), (1.00, 1.50, 64, 40, False),
     (1.00, 1.20, 67, 0, False)],
    # drums (10 ms) incl. in the last step of a segment and at a segment start
    [(2.03, 0, 36, 0, True), (2.04, 0, 38, 0, True), (0.0, 0, 42, 0, True), (0.0, 0.3, 42, 0, False)],
    # a note from t=0 held over a boundary with nothing else
    [(0.00, 3.00, 21, 0, False)],
])
def test_edge_cases_roundtrip(case):
    notes = _notes(*case)
    got, rows = _roundtrip(notes, 3)
    assert got == _key(notes)


def test_tie_section_names_held_notes():
    # 48 (program 33) is held over 2.04 s: segment 1 opens with program 33, pitch 48, tie
    from mt3_infer import _core
    notes = _notes((0.10, 2.50, 48, 33, False))
    rows = tokens.encode_segments(notes, 2)
    want = [_core.vocab_encode("mt3", "program", 33), _core.vocab_encode("mt3", "pitch", 48),
            _core.vocab_encode("mt3", "tie", 0)]
    assert list(rows[1][:3]) == want
    # segment 0 has an empty tie section: it starts with the tie token itself
    assert rows[0][0] == _core.vocab_encode("mt3", "tie", 0)


def test_material_rules():
    for seed in range(60):
        notes, info = material.make_clip(seed)
        dur = notes["offset"] - notes["onset"]
        pitched = ~notes["is_drum"]
        assert ((dur[pitched] >= 0.04 - 1e-9) & (dur[pitched] <= 3.0 + 1e-9)).all()
        steps = np.concatenate([notes["onset"], notes["offset"]]) * 100
        assert np.allclose(steps, np.round(steps), atol=1e-6)  # 10 ms grid
        for key in {(int(p), int(q)) for p, q in zip(notes["pitch"][pitched], notes["program"][pitched])}:
            sel = pitched & (notes["pitch"] == key[0]) & (notes["program"] == key[1])
            on, off = notes["onset"][sel], notes["offset"][sel]
            order = np.argsort(on)
            assert (on[order][1:] >= off[order][:-1] - 1e-9).all()  # no same-key overlap
    assert material.make_clip(5)[0].tobytes() == material.make_clip(5)[0].tobytes()


# ---------------------------------------------------------------------------
# Rendering and training (need FluidSynth, the soundfonts and torch)
# ---------------------------------------------------------------------------

def _render_or_skip():
    from synth import render
    missing = render.missing()
    if missing:
        pytest.skip("rendering needs " + ", ".join(missing))


def _digest(folder):
    h = hashlib.sha256()
    for name in ("features.npy", "tokens.npy", "offsets.npy", "segments.npy"):
        with open(os.path.join(folder, name), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def test_same_seed_same_data(tmp_path):
    _render_or_skip()
    from synth import dataset
    a = dataset.write_shard(str(tmp_path / "a"), 0, 3, 0, 4, 1023)
    b = dataset.write_shard(str(tmp_path / "b"), 0, 3, 0, 4, 1023)
    dataset.write_shard(str(tmp_path / "c"), 0, 4, 0, 4, 1023)
    assert a == b
    assert _digest(tmp_path / "a" / "shard_0000") == _digest(tmp_path / "b" / "shard_0000")
    assert _digest(tmp_path / "a" / "shard_0000") != _digest(tmp_path / "c" / "shard_0000")
    feats = np.load(tmp_path / "a" / "shard_0000" / "features.npy")
    assert feats.dtype == np.float16 and feats.shape[1:] == (256, 512) and np.isfinite(feats).all()


def test_rendered_audio_follows_the_notes(tmp_path):
    """Energy rises within 30 ms after each isolated piano onset (the render is
    sample-accurate to the note times the targets use)."""
    _render_or_skip()
    from synth import render
    notes = _notes((0.30, 0.80, 60, 0, False), (1.20, 1.60, 72, 0, False))
    r = render.Renderer(["fluidr3"])
    x = r.render(notes, 2.0, "fluidr3", np.random.default_rng(0), effects=False)
    r.close()
    frame = 160  # 10 ms
    e = np.array([np.sum(x[i:i + frame] ** 2) for i in range(0, len(x) - frame, frame)])
    for onset in (0.30, 1.20):
        k = int(round(onset * 100))
        assert e[k - 3:k].max() < 0.05 * e[k:k + 3].max(), onset


def test_smoke_training_lowers_the_loss(tmp_path):
    _render_or_skip()
    pytest.importorskip("torch")
    from synth import dataset
    dataset.write_shard(str(tmp_path / "data"), 0, 5, 0, 6, 1023)
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import train_small
    run = tmp_path / "run"
    args = ["--data", str(tmp_path / "data"), "--out", str(run), "--dims", "tiny", "--steps", "40",
            "--batch-size", "4", "--lr", "3e-3", "--warmup", "5", "--log-every", "10",
            "--threads", "1", "--precision", "fp32"]
    assert train_small.main(args) == 0
    with open(run / "log.csv") as fh:
        losses = [float(r["train_loss"]) for r in csv.DictReader(fh)]
    assert len(losses) == 4
    assert losses[-1] < 0.8 * losses[0], losses
    # resuming continues from the checkpoint instead of starting again
    assert train_small.main(args[:-6] + ["--steps", "50", "--log-every", "10", "--threads", "1",
                                         "--precision", "fp32"]) == 0
    with open(run / "log.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == [10, 20, 30, 40, 50]
    # the exported upstream layout loads strictly
    from mt3_infer.export.mt3 import load_mt3
    assert train_small.main(["--out", str(run), "--dims", "tiny", "--export", str(tmp_path / "exp")]) == 0
    load_mt3(str(tmp_path / "exp"))
    # a warm start from an exported network: a new run begins with exactly its weights
    import torch
    from mt3_infer.export.mt3 import export_mt3
    art = str(tmp_path / "tiny.mt3i.pt")
    export_mt3(str(tmp_path / "exp"), art)
    warm = tmp_path / "warm"
    assert train_small.main(["--data", str(tmp_path / "data"), "--out", str(warm), "--dims", "tiny",
                             "--steps", "0", "--init-from", art, "--threads", "1",
                             "--precision", "fp32"]) == 0
    done = torch.load(run / "last.pt", weights_only=False)["model"]
    start = torch.load(warm / "last.pt", weights_only=False)["model"]
    assert done.keys() == start.keys()
    for k in done:
        assert torch.equal(done[k], start[k]), k
    with open(warm / "init.json") as fh:
        assert json.load(fh)["file"] == "tiny.mt3i.pt"
    with pytest.raises(SystemExit, match="dims"):  # a network of other dimensions is refused
        train_small.main(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "warm2"),
                          "--dims", "small", "--steps", "0", "--init-from", art])

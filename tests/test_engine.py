"""The libtorch engine (csrc/engine/engine_torch.cpp), the C engine loader and
metadata reader (csrc/core/engine_loader.c) and the C greedy loop
(csrc/core/decode.c), driven through mt3_infer._core.EngineModel."""
import json
import os
import subprocess
import sys
import threading
from typing import List  # noqa: F401  (TorchScript annotations of the toys)

import numpy as np
import pytest

from mt3_infer import _core, _engine  # noqa: E402
from mt3_infer.exceptions import CheckpointError, FrameworkError  # noqa: E402
from mt3_infer.export import common  # noqa: E402

try:
    import torch

    import fixtures_mt3 as fx
    from mt3_infer.export import mt3 as M
except ImportError:  # the metadata reader tests below still run
    torch = None

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
needs_engine = pytest.mark.skipif(torch is None or _engine.engine_library_path() is None,
                                  reason="needs torch and the engine library")


# ---------------------------------------------------------------------------
# A toy network on the same artifact contract: its step depends on the whole
# self-attention cache history, so a cache written or moved wrongly changes
# the tokens.  The expected tokens come from a plain-Python simulation.
# ---------------------------------------------------------------------------

class Toy(torch.nn.Module if torch is not None else object):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    @(torch.jit.export if torch is not None else (lambda f: f))
    def encode(self, x: "torch.Tensor"):
        b, t = x.size(0), x.size(1)
        c = self.channels
        k = torch.zeros(1, b * c, 1, t, 2)
        k[0, :, 0, 0, 0] = x[:, 0, :c].reshape(b * c)  # EOS position of the row
        k[0, :, 0, 0, 1] = x[:, 1, :c].reshape(b * c)  # salt
        return k, k.clone()

    @(torch.jit.export if torch is not None else (lambda f: f))
    def step(self, tokens: "torch.Tensor", pos: int, sk: "torch.Tensor", sv: "torch.Tensor",
             ck: "torch.Tensor", cv: "torch.Tensor"):
        sk[0, :, 0, pos, 0] = tokens.to(sk.dtype)
        sv[0, :, 0, pos, 1] = tokens.to(sv.dtype) * 2.0
        hist = sk[0, :, 0, : pos + 1, 0].sum(-1) + 0.5 * sv[0, :, 0, : pos + 1, 1].sum(-1)
        nxt = 3 + torch.remainder(hist + ck[0, :, 0, 0, 1] * 7 + pos, 1000)
        nxt = torch.where(ck[0, :, 0, 0, 0] == pos, torch.ones_like(nxt), nxt)
        return nxt.long()

    def forward(self, x: "torch.Tensor"):
        return x


class ToyGroups(torch.nn.Module if torch is not None else object):
    """Toy with step_groups (continuous batching): each group runs Toy's step
    rule on its own rows at its own position, so tokens must equal the
    plain-Python simulation whatever the batch composition."""

    def __init__(self, channels: int):
        super().__init__()
        self.toy = Toy(channels)

    @(torch.jit.export if torch is not None else (lambda f: f))
    def encode(self, x: "torch.Tensor"):
        return self.toy.encode(x)

    @(torch.jit.export if torch is not None else (lambda f: f))
    def step(self, tokens: "torch.Tensor", pos: int, sk: "torch.Tensor", sv: "torch.Tensor",
             ck: "torch.Tensor", cv: "torch.Tensor"):
        return self.toy.step(tokens, pos, sk, sv, ck, cv)

    @(torch.jit.export if torch is not None else (lambda f: f))
    def step_groups(self, tokens: "torch.Tensor", sizes: "List[int]", poss: "List[int]", sk: "torch.Tensor",
                    sv: "torch.Tensor", ck: "torch.Tensor", cv: "torch.Tensor"):
        outs: "List[torch.Tensor]" = []
        r0 = 0
        for g in range(len(sizes)):
            n = sizes[g]
            outs.append(self.toy.step(tokens.narrow(0, r0, n), poss[g], sk.narrow(1, r0, n), sv.narrow(1, r0, n),
                                      ck.narrow(1, r0, n), cv.narrow(1, r0, n)))
            r0 += n
        return torch.cat(outs)

    def forward(self, x: "torch.Tensor"):
        return x


TOY_META = dict(family="toy", frames=8, feature_bins=4, channels=2, n_layers=1, n_heads=1, d_kv=2,
                memory_len=8, max_len=64, vocab_size=1100, max_new_tokens=20,
                check_first_eos=False, source_sha256="0" * 64, min_frames=2)


def toy_expected(x, channels, max_new, check_first_eos, lengths=False):
    rows = []
    for b in range(x.shape[0]):
        for c in range(channels):
            eos_at, salt = float(x[b, 0, c]), float(x[b, 1, c])
            fed, hist, out = 0, 0.0, []
            for pos in range(max_new):
                hist += fed + 0.5 * (2.0 * fed)
                nxt = 1 if eos_at == pos else 3 + int((hist + salt * 7 + pos) % 1000)
                out.append(nxt)
                fed = nxt
                if nxt == 1 and (pos > 0 or check_first_eos):
                    break
            rows.append(out)
    length = max(len(r) for r in rows)
    arr = np.zeros((x.shape[0] * channels, length), np.int64)
    for i, r in enumerate(rows):
        arr[i, : len(r)] = r
    arr = arr.reshape(x.shape[0], channels, length)
    return (arr, [len(r) for r in rows]) if lengths else arr


def toy_features(n, seed, frames=8):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, frames, 4), np.float32)
    x[:, 0, :2] = rng.integers(0, 25, size=(n, 2))  # some rows never hit EOS within 20
    x[:, 0, 0][::5] = 0  # first token EOS: must not end the row (check_first_eos false)
    x[:, 1, :2] = rng.integers(0, 50, size=(n, 2))
    return x


def load_toy(tmp_path_factory, cls):
    """Script a toy module with TOY_META and load it through the engine."""
    path = str(tmp_path_factory.mktemp(cls.__name__.lower()) / "toy.pt")
    if torch is None or _engine.engine_library_path() is None:
        pytest.skip("needs torch and the engine library")
    common.save_scripted(torch.jit.script(cls(2)), path, common.build_meta(**TOY_META))
    model, _ = _engine.load_engine_model(path, "cpu")
    return model


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    return load_toy(tmp_path_factory, Toy)


@needs_engine
@pytest.mark.parametrize("batch_size", [0, 1, 2, 3, 7])
def test_toy_loop_rules(toy_model, batch_size):
    x = toy_features(11, seed=batch_size)
    got = toy_model.decode(x, batch_size=batch_size)
    want = toy_expected(x, 2, 20, check_first_eos=False)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def toy_groups_model(tmp_path_factory):
    return load_toy(tmp_path_factory, ToyGroups)


@needs_engine
@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("max_new", [20, 6])
def test_toy_continuous_batching(toy_groups_model, toy_model, batch_size, max_new):
    """Refilled slots (new segments appended as a group at position 0, caches
    moved by compaction) give the simulation's tokens; fewer engine steps
    than draining batches, the same row-steps; drain_only and a model without
    step_groups give the same tokens."""
    x = toy_features(23, seed=100 + batch_size)
    want, lens = toy_expected(x, 2, max_new, check_first_eos=False, lengths=True)
    got, steps, row_steps = toy_groups_model.decode(x, batch_size=batch_size, max_new_tokens=max_new, stats=True)
    np.testing.assert_array_equal(got, want)
    assert row_steps == sum(lens)
    drained, d_steps, d_rows = toy_groups_model.decode(x, batch_size=batch_size, max_new_tokens=max_new,
                                                       stats=True, drain_only=True)
    np.testing.assert_array_equal(drained, want)
    old, o_steps, _ = toy_model.decode(x, batch_size=batch_size, max_new_tokens=max_new, stats=True)
    np.testing.assert_array_equal(old, want)
    assert d_rows == row_steps and o_steps == d_steps  # no step_groups: the drain loop
    # drain: each batch runs to its longest row; continuous: never more steps
    per_batch = [max(lens[2 * s0:2 * min(s0 + batch_size, 23)]) for s0 in range(0, 23, batch_size)]
    assert d_steps == sum(per_batch)
    assert steps <= d_steps
    if max_new == 20 and batch_size in (3, 4):
        assert steps < d_steps


@needs_engine
def test_toy_max_new_tokens_and_frames(toy_model):
    x = toy_features(6, seed=42, frames=5)  # any T in [min_frames, frames]
    got, steps, row_steps = toy_model.decode(x, max_new_tokens=7, stats=True)
    want, lens = toy_expected(x, 2, 7, check_first_eos=False, lengths=True)
    np.testing.assert_array_equal(got, want)
    assert steps == max(lens)
    assert row_steps == sum(lens)  # finished rows cost nothing


@needs_engine
def test_toy_finished_rows_leave_the_batch(toy_model):
    # every row ends at position 3: the loop must stop after 4 steps
    x = np.zeros((5, 8, 4), np.float32)
    x[:, 0, :2] = 3
    got, steps, row_steps = toy_model.decode(x, stats=True)
    assert got.shape == (5, 2, 4) and steps == 4 and row_steps == 40
    assert (got[:, :, 3] == 1).all()


@needs_engine
def test_toy_bad_arguments(toy_model):
    with pytest.raises(ValueError, match="accepts 2..8"):
        toy_model.decode(np.zeros((1, 9, 4), np.float32))
    with pytest.raises(ValueError, match="accepts 2..8"):
        toy_model.decode(np.zeros((1, 1, 4), np.float32))
    with pytest.raises(ValueError, match="bins per frame"):
        toy_model.decode(np.zeros((1, 8, 5), np.float32))
    with pytest.raises(ValueError, match="3-D"):
        toy_model.decode(np.zeros((8, 4), np.float32))
    with pytest.raises(ValueError, match="exceeds this model's 64"):
        toy_model.decode(np.zeros((1, 8, 4), np.float32), max_new_tokens=65)
    empty = toy_model.decode(np.zeros((0, 8, 4), np.float32))
    assert empty.shape == (0, 2, 0)


@needs_engine
def test_int8_needs_an_export_with_the_int8_path(tmp_path):
    path = str(tmp_path / "toy.pt")
    common.save_scripted(torch.jit.script(Toy(2)), path, common.build_meta(**TOY_META))
    with pytest.raises(CheckpointError, match="no int8 path"):
        _engine.load_engine_model(path, "cpu", dtype="int8")


@needs_engine
def test_toy_float64_and_strided_input(toy_model):
    x = toy_features(4, seed=3)
    big = np.zeros((8, 8, 4), np.float64)
    big[::2] = x
    np.testing.assert_array_equal(toy_model.decode(big[::2]), toy_model.decode(x))


# ---------------------------------------------------------------------------
# The real MT3 network through the C engine vs the anchor's uncached loop
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mt3_exports(tmp_path_factory):
    if torch is None or _engine.engine_library_path() is None:
        pytest.skip("needs torch and the engine library")
    out = []
    for preset in fx.EOS_MIX + fx.NO_EOS[:1]:
        d = tmp_path_factory.mktemp(f"mt3_{preset['seed']}_{len(out)}")
        ckpt = fx.write_checkpoint(str(d), **preset)
        exp = str(d / "mt3.export.pt")
        M.export_mt3(ckpt, exp)
        out.append((preset, ckpt, exp))
    return out


@needs_engine
def test_engine_greedy_equals_uncached_reference(mt3_exports):
    cap = 32
    for preset, ckpt, exp in mt3_exports:
        ref = M.load_mt3(ckpt)
        model, meta = _engine.load_engine_model(exp, "cpu")
        assert meta["family"] == "mt3"
        for frames, n, clean in ((256, 24, 16), (257, 6, 3)):
            x = fx.random_features(n, frames, seed=preset["seed"] * 7 + frames)
            want, tie = fx.reference_greedy(ref, x, cap)
            got = model.decode(x, max_new_tokens=cap)
            assert got.shape[:2] == (n, 1)
            fx.assert_tokens_match(got[:, 0, :], want, tie, min_clean=clean)


@needs_engine
def test_engine_batch_sizes_agree(mt3_exports):
    preset, ckpt, exp = mt3_exports[0]
    model, _ = _engine.load_engine_model(exp, "cpu", num_threads=1)
    x = fx.random_features(7, 256, seed=77)
    full = model.decode(x, max_new_tokens=30)
    assert (full == 1).any() and not (full == 1).any(axis=2).all()  # some rows end early
    for bs in (1, 3, 7):
        np.testing.assert_array_equal(model.decode(x, batch_size=bs, max_new_tokens=30), full)
        # continuous batching (the default when bs < segments) vs draining batches
        np.testing.assert_array_equal(model.decode(x, batch_size=bs, max_new_tokens=30, drain_only=True), full)
    x = fx.random_features(19, 256, seed=78)
    full, steps, rows = model.decode(x, max_new_tokens=30, stats=True)
    for bs in (2, 5):
        got, c_steps, c_rows = model.decode(x, batch_size=bs, max_new_tokens=30, stats=True)
        np.testing.assert_array_equal(got, full)
        _, d_steps, d_rows = model.decode(x, batch_size=bs, max_new_tokens=30, stats=True, drain_only=True)
        assert c_rows == d_rows == rows and c_steps < d_steps


@needs_engine
def test_engine_two_threads_one_model(mt3_exports):
    preset, ckpt, exp = mt3_exports[1]
    model, _ = _engine.load_engine_model(exp, "cpu")
    xs = [fx.random_features(3, 256, seed=s) for s in (1, 2)]
    want = [model.decode(x, max_new_tokens=25) for x in xs]
    got = [None, None]
    errors = []

    def run(i):
        try:
            for _ in range(3):
                r = model.decode(xs[i], max_new_tokens=25)
                if got[i] is not None and not np.array_equal(got[i], r):
                    errors.append("nondeterministic")
                got[i] = r
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


# ---------------------------------------------------------------------------
# Refusals and errors
# ---------------------------------------------------------------------------

@needs_engine
def test_refuses_torchscript_without_meta(tmp_path):
    p = str(tmp_path / "plain.pt")
    torch.jit.save(torch.jit.script(Toy(1)), p)
    with pytest.raises(CheckpointError, match="no mt3_infer.json"):
        _engine.load_engine_model(p, "cpu")


@needs_engine
def test_refuses_other_format_version(tmp_path):
    p = str(tmp_path / "v2.pt")
    meta = dict(common.build_meta(**TOY_META))
    meta["format_version"] = 2
    torch.jit.save(torch.jit.script(Toy(2)), p, _extra_files={"mt3_infer.json": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="format_version 2"):
        _engine.load_engine_model(p, "cpu")


@needs_engine
def test_refuses_incomplete_meta(tmp_path):
    p = str(tmp_path / "bad.pt")
    meta = dict(common.build_meta(**TOY_META))
    del meta["vocab_size"]
    torch.jit.save(torch.jit.script(Toy(2)), p, _extra_files={"mt3_infer.json": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="vocab_size"):
        _engine.load_engine_model(p, "cpu")


@needs_engine
def test_refuses_non_torchscript_files(tmp_path, mt3_exports):
    _, ckpt, exp = mt3_exports[0]
    with pytest.raises(CheckpointError, match="not a loadable TorchScript file"):
        _engine.load_engine_model(ckpt, "cpu")  # the raw checkpoint
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError):
        _engine.load_engine_model(str(junk), "cpu")
    data = open(exp, "rb").read()
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError):
        _engine.load_engine_model(str(trunc), "cpu")
    with pytest.raises(CheckpointError, match="not found"):
        _engine.load_engine_model(str(tmp_path / "missing.pt"), "cpu")


@needs_engine
def test_device_and_dtype_errors(mt3_exports):
    exp = mt3_exports[0][2]
    if not torch.cuda.is_available():
        with pytest.raises(FrameworkError, match="CUDA is not available"):
            _engine.load_engine_model(exp, "cuda")
        with pytest.raises(FrameworkError, match="CUDA is not available"):
            _engine.load_engine_model(exp, "cuda:1")
    with pytest.raises(ValueError, match="unknown device"):
        _engine.load_engine_model(exp, "tpu")
    with pytest.raises(ValueError, match="only offered on CUDA"):
        _engine.load_engine_model(exp, "cpu", dtype="float16")
    with pytest.raises(ValueError, match="dtype must be"):
        _engine.load_engine_model(exp, "cpu", dtype="int4")
    model, _ = _engine.load_engine_model(exp, "auto")
    assert model.device in ("cpu", "cuda:0")


@needs_engine
@pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_cuda_decode(mt3_exports, dtype):
    preset, ckpt, exp = mt3_exports[-1]
    cpu, _ = _engine.load_engine_model(exp, "cpu")
    gpu, _ = _engine.load_engine_model(exp, "cuda", dtype=dtype)
    x = fx.random_features(5, 256, seed=5)
    a, b = cpu.decode(x, max_new_tokens=20), gpu.decode(x, max_new_tokens=20)
    assert a.shape[:2] == b.shape[:2]
    if dtype == "float32":
        np.testing.assert_array_equal(a, b)


@needs_engine
def test_missing_engine_library_is_a_framework_error(mt3_exports):
    exp = mt3_exports[0][2]
    code = (
        "import sys\n"
        "from mt3_infer import _engine\n"
        "from mt3_infer.exceptions import FrameworkError\n"
        "try:\n"
        f"    _engine.load_engine_model({exp!r}, 'cpu')\n"
        "except FrameworkError as e:\n"
        "    print('FrameworkError', e)\n"
    )
    env = dict(os.environ, MT3_ENGINE_LIBRARY="/nonexistent/libmt3_torch.so")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.startswith("FrameworkError"), out.stdout + out.stderr
    assert "missing" in out.stdout


# ---------------------------------------------------------------------------
# The C reader of mt3_infer.json
# ---------------------------------------------------------------------------

def test_meta_reader_agrees_with_json():
    meta = common.build_meta(**TOY_META)
    text = common.meta_json(meta)
    got = _core.parse_model_meta(text)
    for k, v in got.items():
        assert v == meta[k], k
    # formatting variations and nested extras are fine
    text2 = json.dumps(dict(meta, nested={"a": [1, {"b": "}"}], "s": "x\"y"}), indent=3)
    assert _core.parse_model_meta(text2) == got


@pytest.mark.parametrize("mutate,msg", [
    (lambda m: m.pop("eos_id"), "lacks \"eos_id\""),
    (lambda m: m.update(format_version=3), "format_version 3"),
    (lambda m: m.update(frames="256"), "must be an integer"),
    (lambda m: m.update(check_first_eos=1), "true or false"),
    (lambda m: m.update(max_new_tokens=5000), "max_new_tokens"),
    (lambda m: m.update(eos_id=99999), "outside the vocabulary"),
    (lambda m: m.update(n_layers=0), "out of range"),
    (lambda m: m.update(frames=2.5), "must be an integer"),
])
def test_meta_reader_rejects(mutate, msg):
    meta = dict(common.build_meta(**TOY_META))
    mutate(meta)
    with pytest.raises(CheckpointError, match=msg):
        _core.parse_model_meta(json.dumps(meta))


def test_meta_reader_fuzz():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings, strategies as st

    base = common.meta_json(common.build_meta(**TOY_META))

    @settings(max_examples=400, deadline=None)
    @given(st.binary(max_size=400), st.integers(0, len(base)), st.integers(0, 40))
    def run(junk, cut, drop):
        for text in (junk, base[:cut].encode() + junk, base[:cut] + base[cut + drop:]):
            try:
                got = _core.parse_model_meta(text)
            except CheckpointError:
                continue
            # accepted: must be a valid JSON object with the contract values
            ref = json.loads(text)
            assert got["vocab_size"] == ref["vocab_size"]
            assert got["max_new_tokens"] == ref["max_new_tokens"]

    run()
    del hypothesis

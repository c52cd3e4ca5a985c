"""MT3 exporter: strict loading of mt3.pth, the TorchScript artifact, and the
cached step decoding against an uncached greedy decode and a NumPy float64
reference written from the spec (specs/mt3-family.md §3)."""
import hashlib
import math
import json
import os
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fixtures_mt3 as fx  # noqa: E402
from mt3_infer.exceptions import CheckpointError  # noqa: E402
from mt3_infer.export import common  # noqa: E402
from mt3_infer.export import mt3 as M  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SMALL_CFG = M.MT3Config(d_model=64, n_heads=2, d_kv=16, d_ff=96, n_enc_layers=2, n_dec_layers=2)


# ---------------------------------------------------------------------------
# NumPy float64 reference (spec §3.1-3.2), independent of the torch modules
# ---------------------------------------------------------------------------

class _Rounding:
    """Error bound of a float32 evaluation of the reference network below.

    Each matrix product of inner length k is a set of inner products; for
    float32 with rounding errors modelled as independent (Higham & Mary 2019,
    "A new approach to probabilistic rounding error analysis", Thm 3.1) with
    lambda = 6:  |fl(a.b) - a.b| <= lambda sqrt(k) u sum |a_i b_i|, failing with
    probability <= 2k exp(-lambda^2 / 2) ~ 1.5e-8 k per product.  `tol` records,
    per product, lambda sqrt(k) u max(|A| @ |B|), adds 8u max|y| for each of the
    elementwise stages (RMS norm, softmax, GELU, residual adds: a few roundings
    of O(1) values each), and multiplies the sum by G = 0.5, the amplification
    of errors injected at every product on their way to the output.  G is not
    assumed: `gain` measures it in float64 by injecting exactly such errors
    (random signs, size sqrt(k) (|A| @ |B|) x 1e-9) and
    test_rounding_gain_of_the_reference_network checks it stays <= 0.5
    (measured 0.21-0.23 for the encoder, 0.09-0.12 for the decoder logits of
    the small test models).  For those models and random features this gives
    ~7e-4 on the encoder output and ~7e-4 on the logits; two float32
    evaluations (e.g. the cached engine and the uncached reference) then differ
    by <= 1.4e-3 in a logit: fixtures_mt3.TIE_TOL."""
    U = 2.0 ** -24
    LAMBDA = 6.0
    G = 0.5

    def __init__(self):
        self.mode, self.terms, self.rng, self.eps = None, [], None, 1e-9

    def mm(self, a, b):
        y = a @ b
        if self.mode is not None:
            mag = np.abs(a) @ np.abs(b)
            k = a.shape[-1]
            self.terms.append(math.sqrt(k) * mag.max())
            if self.mode == "inject":
                y = y + self.eps * math.sqrt(k) * mag * self.rng.choice([-1.0, 1.0], size=y.shape)
        return y

    def tol(self, fn, *args, elementwise_stages):
        self.mode, self.terms = "record", []
        try:
            y = fn(*args)
        finally:
            self.mode = None
        s = self.LAMBDA * self.U * sum(self.terms) + elementwise_stages * 8 * self.U * np.abs(y).max()
        return self.G * s

    def gain(self, fn, *args, seed=0):
        y = fn(*args)
        self.mode, self.terms, self.rng = "inject", [], np.random.default_rng(seed)
        try:
            y2 = fn(*args)
        finally:
            self.mode = None
        return np.abs(y2 - y).max() / (self.eps * sum(self.terms))


RND = _Rounding()
mm = RND.mm


def np_rms(x, g):
    return g * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6))


def np_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def np_pe(inv_freq, n):
    ang = np.arange(n, dtype=np.float64)[:, None] * inv_freq.astype(np.float64)[None, :]
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1)


def np_attention(xq, xkv, W, prefix, heads, causal=False):
    q = mm(xq, W[prefix + "q.weight"].T)
    k = mm(xkv, W[prefix + "k.weight"].T)
    v = mm(xkv, W[prefix + "v.weight"].T)
    t, s = q.shape[0], k.shape[0]
    dh = q.shape[1] // heads
    out = np.zeros_like(q)
    for h in range(heads):
        sl = slice(h * dh, (h + 1) * dh)
        sc = mm(q[:, sl], k[:, sl].T)  # no 1/sqrt(d) scaling
        if causal:
            sc = np.where(np.tril(np.ones((t, s), bool)), sc, -np.inf)
        sc = sc - sc.max(axis=1, keepdims=True)
        p = np.exp(sc)
        p /= p.sum(axis=1, keepdims=True)
        out[:, sl] = mm(p, v[:, sl])
    return mm(out, W[prefix + "o.weight"].T)


def np_ff(x, W, prefix):
    return mm(np_gelu_tanh(mm(x, W[prefix + "wi_0.weight"].T)) * mm(x, W[prefix + "wi_1.weight"].T),
              W[prefix + "wo.weight"].T)


def np_encoder(W, x, heads, n_layers):
    h = mm(x, W["proj.weight"].T) + np_pe(W["encoder.pos_emb.inv_freq"], x.shape[0])
    for i in range(n_layers):
        p = f"encoder.block.{i}.layer."
        a = np_rms(h, W[p + "0.layer_norm.weight"])
        h = h + np_attention(a, a, W, p + "0.SelfAttention.", heads)
        h = h + np_ff(np_rms(h, W[p + "1.layer_norm.weight"]), W, p + "1.DenseReluDense.")
    return np_rms(h, W["encoder.final_layer_norm.weight"])


def np_decoder_logits(W, enc, ids, heads, n_layers):
    h = W["decoder_embed_tokens.weight"][ids] + np_pe(W["decoder.pos_emb.inv_freq"], len(ids))
    for i in range(n_layers):
        p = f"decoder.block.{i}.layer."
        a = np_rms(h, W[p + "0.layer_norm.weight"])
        h = h + np_attention(a, a, W, p + "0.SelfAttention.", heads, causal=True)
        a = np_rms(h, W[p + "1.layer_norm.weight"])
        h = h + np_attention(a, enc, W, p + "1.EncDecAttention.", heads)
        h = h + np_ff(np_rms(h, W[p + "2.layer_norm.weight"]), W, p + "2.DenseReluDense.")
    h = np_rms(h, W["decoder.final_layer_norm.weight"])
    return mm(h, W["lm_head.weight"].T)


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("mt3small")
    return fx.write_checkpoint(str(d), **fx.EOS_MIX[0])


@pytest.fixture(scope="module")
def small_export(small_ckpt, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("exp") / "mt3.export.pt")
    M.export_mt3(small_ckpt, out)
    return out


# ---------------------------------------------------------------------------
# manifest and strict loading
# ---------------------------------------------------------------------------

def test_manifest_matches_spec_193_keys():
    spec = fx.spec_manifest(fx.FULL)
    ours = M.mt3_manifest(M.MT3Config())
    assert len(spec) == 193
    assert len({k for k, _ in spec}) == 193
    assert dict(spec) == {k: tuple(v) for k, v in ours.items()}
    n_values = sum(int(np.prod(s)) for k, s in spec if k not in M.ALIASES)
    assert n_values == 45_897_216  # spec §3.3: distinct float32 values


def test_reference_module_state_dict_keys_are_the_manifest():
    model = M.MT3(SMALL_CFG)
    sd = model.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == dict(fx.spec_manifest(fx.SMALL))


@pytest.mark.slow
def test_full_size_checkpoint_loads_strictly(tmp_path):
    path = fx.write_checkpoint(str(tmp_path), fx.FULL, seed=0, config_json=False)
    model = M.load_mt3(path)  # no config.json: dimensions from the tensors, 6 x 64 heads
    assert model.cfg == M.MT3Config()
    sd = torch.load(path, weights_only=True)
    assert len(sd) == 193
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_load_directory_form_and_file_form(small_ckpt):
    a = M.load_mt3(os.path.dirname(small_ckpt))
    b = M.load_mt3(small_ckpt)
    assert a.cfg == b.cfg == SMALL_CFG
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def _write_state(tmp_path, state, cfg=True):
    torch.save(state, str(tmp_path / "mt3.pth"))
    if cfg:
        with open(tmp_path / "config.json", "w") as f:
            json.dump(fx.kunato_config(fx.SMALL), f)
    return str(tmp_path / "mt3.pth")


def test_missing_key_is_reported(tmp_path):
    st = fx.random_state(fx.SMALL, seed=0)
    del st["decoder.block.1.layer.2.layer_norm.weight"]
    with pytest.raises(CheckpointError, match=r"1 missing keys: decoder\.block\.1\.layer\.2\.layer_norm\.weight"):
        M.load_mt3(_write_state(tmp_path, st))


def test_unexpected_key_is_reported(tmp_path):
    st = fx.random_state(fx.SMALL, seed=0)
    st["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = torch.zeros(32, 2)
    with pytest.raises(CheckpointError, match=r"1 unexpected keys: encoder\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias"):
        M.load_mt3(_write_state(tmp_path, st))


def test_shape_mismatch_is_reported(tmp_path):
    st = fx.random_state(fx.SMALL, seed=0)
    st["lm_head.weight"] = torch.zeros(1000, 64)
    with pytest.raises(CheckpointError, match=r"lm_head\.weight: expected \[1536, 64\], got \[1000, 64\]"):
        M.load_mt3(_write_state(tmp_path, st))


def test_everything_wrong_lists_all_three(tmp_path):
    st = fx.random_state(fx.SMALL, seed=0)
    del st["proj.weight"]
    st["extra"] = torch.zeros(1)
    st["decoder.final_layer_norm.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as ei:
        M.load_mt3(_write_state(tmp_path, st))
    msg = str(ei.value)
    assert "missing keys: proj.weight" in msg
    assert "unexpected keys: extra" in msg
    assert "decoder.final_layer_norm.weight: expected [64], got [3]" in msg


def test_aliases_must_agree(tmp_path):
    st = fx.random_state(fx.SMALL, seed=0)
    st["encoder.embed_tokens.weight"] = st["proj.weight"].clone() + 1.0
    with pytest.raises(CheckpointError, match="encoder.embed_tokens.weight differs from proj.weight"):
        M.load_mt3(_write_state(tmp_path, st))


def test_truncated_checkpoint(tmp_path, small_ckpt):
    data = open(small_ckpt, "rb").read()
    p = tmp_path / "mt3.pth"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"not a valid PyTorch checkpoint \(corrupt, truncated"):
        M.load_mt3(str(p))


def test_non_checkpoint_files(tmp_path):
    p = tmp_path / "mt3.pth"
    p.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match=r"MT3 checkpoint .* not a valid PyTorch checkpoint.*b'this'"):
        M.load_mt3(str(p))
    p.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        M.load_mt3(str(p))
    torch.save([1, 2, 3], str(p))
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        M.load_mt3(str(p))
    with pytest.raises(CheckpointError, match="not found"):
        M.load_mt3(str(tmp_path / "nope.pth"))
    empty_dir = tmp_path / "d"
    empty_dir.mkdir()
    with pytest.raises(CheckpointError, match="has no mt3.pth"):
        M.load_mt3(str(empty_dir))


@pytest.mark.parametrize("prefix", [b"", b"\x80", b"\x80\x02", b"PK\x03\x04"])
def test_random_bytes_checkpoint_own_message_no_warning(tmp_path, prefix):
    import warnings

    rng = np.random.default_rng(len(prefix))
    for i in range(20):
        p = tmp_path / f"r{i}" / "mt3.pth"
        p.parent.mkdir()
        p.write_bytes(prefix + rng.integers(0, 256, 3000 + i, dtype=np.uint8).tobytes())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's "Detected pickle protocol" UserWarning fails here
            with pytest.raises(CheckpointError) as ei:
                M.load_mt3(str(p))
        msg = str(ei.value)
        assert "not a valid PyTorch checkpoint" in msg and "torch.save() file" in msg, msg
        assert "mt3-infer download <model> --force" in msg
        assert "weights_only" not in msg and "arbitrary code" not in msg, msg


def test_pickled_objects_are_refused(tmp_path):
    # weights_only=True: an arbitrary pickled class is not loaded
    import collections

    p = tmp_path / "mt3.pth"
    torch.save({"x": collections.Counter("abc")}, str(p))
    with pytest.raises(CheckpointError):
        M.load_mt3(str(p))


def test_nan_weights_are_refused(tmp_path):
    st = fx.random_state(fx.SMALL, seed=0)
    st["lm_head.weight"][3, 3] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        M.load_mt3(_write_state(tmp_path, st))


# ---------------------------------------------------------------------------
# artifact
# ---------------------------------------------------------------------------

def test_artifact_metadata(small_ckpt, small_export):
    meta = common.read_artifact_meta(small_export)
    assert meta["format_version"] == 1 and meta["family"] == "mt3"
    assert meta["source_sha256"] == hashlib.sha256(open(small_ckpt, "rb").read()).hexdigest()
    assert meta["exporter_version"] == common.EXPORTER_VERSION
    assert (meta["frames"], meta["min_frames"], meta["memory_len"]) == (257, 1, 257)
    assert (meta["channels"], meta["n_layers"], meta["n_heads"], meta["d_kv"]) == (1, 2, 2, 16)
    assert (meta["max_len"], meta["max_new_tokens"], meta["check_first_eos"]) == (1024, 1024, True)
    assert (meta["start_id"], meta["eos_id"], meta["pad_id"], meta["vocab_size"]) == (0, 1, 0, 1536)
    # exporter 3: the encoder's measured peak working memory per segment; it
    # holds at least the cross K/V it returns: 2 (k, v) x L x H x S x Dh
    # float32 = 2*2*2*257*16*4 B = 128.5 KiB
    assert isinstance(meta["encoder_kib_per_segment"], int)
    assert meta["encoder_kib_per_segment"] >= 2 * 2 * 2 * 257 * 16 * 4 / 1024
    with zipfile.ZipFile(small_export) as zf:
        assert any(n.endswith("/extra/mt3_infer.json") for n in zf.namelist())
    # the checkpoint itself is not an artifact
    assert common.read_artifact_meta(small_ckpt) is None


def test_scripted_methods_exist(small_export):
    mod = torch.jit.load(small_export)
    for name in ("encode", "step", "step_logits", "encoder_hidden"):
        assert hasattr(mod, name)


def test_encoder_and_first_logits_match_numpy_reference(tmp_path):
    # perturbed inv_freq: proves the stored buffers are used
    st = fx.random_state(fx.SMALL, seed=5, inv_freq_jitter=0.05, cross_gain=3.0)
    path = _write_state(tmp_path, st)
    out = str(tmp_path / "x.pt")
    M.export_mt3(path, out)
    mod = torch.jit.load(out)
    W = {k: v.double().numpy() for k, v in st.items()}
    for frames in (256, 257):
        x = fx.random_features(2, frames, seed=frames)
        with torch.inference_mode():
            enc = mod.encoder_hidden(torch.from_numpy(x)).numpy()
            ck, cv = mod.encode(torch.from_numpy(x))
            L, N, H, T, D = ck.shape
            sk = torch.zeros(L, N, H, 8, D)
            sv = torch.zeros_like(sk)
            tok = torch.zeros(N, dtype=torch.long)
            logits0 = mod.step_logits(tok, 0, sk, sv, ck, cv).numpy()
            nxt = logits0.argmax(-1)
            logits1 = mod.step_logits(torch.from_numpy(nxt), 1, sk, sv, ck, cv).numpy()
        for b in range(2):
            xb = x[b].astype(np.float64)
            e_ref = np_encoder(W, xb, 2, 2)
            # 2 layers x (2 norms, softmax, GELU, 2 adds) + final norm = 13 elementwise stages
            tol_e = RND.tol(np_encoder, W, xb, 2, 2, elementwise_stages=13)
            np.testing.assert_allclose(enc[b], e_ref, atol=tol_e, rtol=0)
            ids = np.array([0, nxt[b]])
            lg = np_decoder_logits(W, e_ref, ids, 2, 2)
            # decoder: 2 x (3 norms, 2 softmax, GELU, 3 adds) + final norm = 19, on top of
            # the encoder's error carried through the cross-attention (gain <= G)
            tol_l = RND.tol(np_decoder_logits, W, e_ref, ids, 2, 2, elementwise_stages=19) + RND.G * tol_e
            np.testing.assert_allclose(logits0[b], lg[0], atol=tol_l, rtol=0)
            np.testing.assert_allclose(logits1[b], lg[1], atol=tol_l, rtol=0)


def test_reference_module_matches_numpy(small_ckpt):
    model = M.load_mt3(small_ckpt)
    st = torch.load(small_ckpt, weights_only=True)
    W = {k: v.double().numpy() for k, v in st.items()}
    x = fx.random_features(1, 256, seed=9)
    with torch.no_grad():
        enc = model.encode(torch.from_numpy(x))
        ids = torch.tensor([[0, 17, 400, 5]])
        lg = model.decode_logits(enc, ids).numpy()[0]
    x0 = x[0].astype(np.float64)
    e_ref = np_encoder(W, x0, 2, 2)
    tol_e = RND.tol(np_encoder, W, x0, 2, 2, elementwise_stages=13)  # see the test above
    np.testing.assert_allclose(enc.numpy()[0], e_ref, atol=tol_e, rtol=0)
    tol_l = RND.tol(np_decoder_logits, W, e_ref, ids.numpy()[0], 2, 2, elementwise_stages=19) + RND.G * tol_e
    np.testing.assert_allclose(lg, np_decoder_logits(W, e_ref, ids.numpy()[0], 2, 2), atol=tol_l, rtol=0)


def test_rounding_gain_of_the_reference_network():
    # the one measured constant of _Rounding: errors injected at every product of
    # the float64 reference reach the output amplified by at most G = 0.5
    st = fx.random_state(fx.SMALL, seed=5, inv_freq_jitter=0.05, cross_gain=3.0)
    W = {k: v.double().numpy() for k, v in st.items()}
    for frames in (256, 257):
        x = fx.random_features(1, frames, seed=frames)[0].astype(np.float64)
        e = np_encoder(W, x, 2, 2)
        for seed in range(3):
            assert RND.gain(np_encoder, W, x, 2, 2, seed=seed) <= RND.G
            assert RND.gain(np_decoder_logits, W, e, np.array([0, 17, 400]), 2, 2, seed=seed) <= RND.G


# ---------------------------------------------------------------------------
# cached greedy (scripted module, Python driver) vs the anchor's uncached loop
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("preset", fx.EOS_MIX + fx.NO_EOS[1:], ids=lambda p: f"seed{p['seed']}")
def test_scripted_cached_greedy_equals_uncached(tmp_path, preset):
    path = fx.write_checkpoint(str(tmp_path), **preset)
    out = str(tmp_path / "x.pt")
    M.export_mt3(path, out)
    ref = M.load_mt3(path)
    mod = torch.jit.load(out)
    cap = 32
    x = fx.random_features(24, 256, seed=preset["seed"] + 100)
    want, tie = fx.reference_greedy(ref, x, cap)
    got = M.greedy_cached(mod, torch.from_numpy(x), cap).numpy()
    fx.assert_tokens_match(got, want, tie, min_clean=16)
    # frames 257 (MT3-PyTorch) through the same file
    x2 = fx.random_features(6, 257, seed=preset["seed"] + 200)
    want, tie = fx.reference_greedy(ref, x2, cap)
    got = M.greedy_cached(mod, torch.from_numpy(x2), cap).numpy()
    fx.assert_tokens_match(got, want, tie, min_clean=3)


def test_eos_mix_presets_really_mix(tmp_path):
    # the fixtures must exercise both outcomes: rows ending with EOS and rows at the cap
    path = fx.write_checkpoint(str(tmp_path), **fx.EOS_MIX[0])
    ref = M.load_mt3(path)
    ids = ref.greedy(torch.from_numpy(fx.random_features(20, 256, seed=101)), 40)[:, 1:]
    ended = (ids == 1).any(dim=1)
    assert 0 < int(ended.sum()) < 20


def test_export_entry_point_and_cli(small_ckpt, tmp_path):
    import subprocess
    import sys

    from mt3_infer.exceptions import ModelNotFoundError
    from mt3_infer.export import export_checkpoint

    out = export_checkpoint("mt3_pytorch", os.path.dirname(small_ckpt), str(tmp_path / "a.pt"))
    assert common.read_artifact_meta(out)["family"] == "mt3"
    with pytest.raises(ModelNotFoundError):
        export_checkpoint("mt4", small_ckpt, str(tmp_path / "b.pt"))
    r = subprocess.run([sys.executable, "-m", "mt3_infer.export", "--model", "mr_mt3", small_ckpt,
                        "-o", str(tmp_path / "c.pt")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert common.read_artifact_meta(str(tmp_path / "c.pt"))["source_sha256"] == \
        common.sha256_file(small_ckpt)
    bad = tmp_path / "bad.pth"
    bad.write_text("nope")
    r = subprocess.run([sys.executable, "-m", "mt3_infer.export", "--model", "mr_mt3", str(bad),
                        "-o", str(tmp_path / "d.pt")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "error:" in r.stderr
    assert not os.path.exists(tmp_path / "d.pt")

"""Export of Magenta's T5X checkpoints (mt3_infer.export.magenta) on small
random checkpoints written in the real T5X layout by fixtures_t5x:
Magenta's positional table against its closed form (specs/magenta-t5x.md
§4.1, §8 item 3), the exported encoder against an independent float64 NumPy
forward written from §4.2, and the same weights through the MT3-PyTorch
path (mt3.pth layout) giving the same encoder output once the positional
table is Magenta's (§8 items 2, 4)."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("msgpack")

import fixtures_t5x as fx  # noqa: E402
from mt3_infer.export import common, magenta  # noqa: E402
from mt3_infer.export import mt3 as M  # noqa: E402
from mt3_infer.export import t5x  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DIMS = dict(d_model=32, n_heads=6, d_kv=4, d_ff=48, n_enc=2, n_dec=2)  # 6 heads: Magenta's count


def closed_form_row(p, d):
    """PE row p from §4.1 with Python floats (IEEE double), rounded once to float32."""
    half = d // 2
    scale = -math.log(10000.0) / (half - 1)
    w = [math.exp(i * scale) for i in range(half)]
    return np.array([math.sin(p * wi) for wi in w] + [math.cos(p * wi) for wi in w], dtype=np.float32)


def test_position_table_closed_form():
    table = magenta.magenta_position_table(2048, 512)
    assert table.shape == (2048, 512) and table.dtype == np.float32
    for p in (0, 1, 37, 255, 511, 1023, 2047):
        np.testing.assert_array_equal(table[p], closed_form_row(p, 512), err_msg=f"row {p}")
    # w[255] = 1e-4: the last sine column is sin(p * 1e-4)
    assert abs(float(table[2047, 255]) - math.sin(2047e-4)) < 1e-7
    # not the port's table (10000^(-i/256)): differs well beyond rounding
    port = M.sinusoid_table(M.default_inv_freq(512), 256).numpy()
    assert np.abs(port - table[:256]).max() > 1e-2


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def rms(x, scale, eps=1e-6):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * scale


def numpy_encoder(params, feats, n_heads):
    """§4.2 in float64: projection (no bias) + Magenta PE, pre-norm
    self-attention without 1/sqrt(d) scaling, gated-gelu MLP, final norm."""
    P = {k: v.astype(np.float64) for k, v in params.items()}
    t = feats.shape[1]
    d = P["encoder/continuous_inputs_projection/kernel"].shape[1]
    x = feats.astype(np.float64) @ P["encoder/continuous_inputs_projection/kernel"]
    x = x + np.stack([closed_form_row(p, d) for p in range(t)]).astype(np.float64)
    i = 0
    while f"encoder/layers_{i}/attention/query/kernel" in P:
        q_ = f"encoder/layers_{i}/"
        h = rms(x, P[q_ + "pre_attention_layer_norm/scale"])
        q, k, v = (h @ P[q_ + f"attention/{n}/kernel"] for n in ("query", "key", "value"))
        b, _, inner = q.shape
        dh = inner // n_heads

        def heads(a):
            return a.reshape(b, t, n_heads, dh).transpose(0, 2, 1, 3)

        s = heads(q) @ heads(k).transpose(0, 1, 3, 2)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = (s @ heads(v)).transpose(0, 2, 1, 3).reshape(b, t, inner)
        x = x + o @ P[q_ + "attention/out/kernel"]
        h = rms(x, P[q_ + "pre_mlp_layer_norm/scale"])
        x = x + (gelu_tanh(h @ P[q_ + "mlp/wi_0/kernel"]) * (h @ P[q_ + "mlp/wi_1/kernel"])) @ P[q_ + "mlp/wo/kernel"]
        i += 1
    return rms(x, P["encoder/encoder_norm/scale"])


@pytest.fixture(scope="module", params=[1536, 1664], ids=["mt3", "ismir2021"])
def exported(request, tmp_path_factory):
    vocab = request.param
    params = fx.random_t5x_params(vocab_size=vocab, seed=vocab, **DIMS)
    d = tmp_path_factory.mktemp(f"t5x_{vocab}")
    ckpt = fx.write_t5x_checkpoint(str(d / "checkpoint_dir"), params)
    out = str(d / "magenta.mt3i.pt")
    magenta.export_magenta(ckpt, out)
    return vocab, params, ckpt, out


def test_meta(exported):
    vocab, _, _, out = exported
    meta = common.read_artifact_meta(out)
    assert meta["family"] == "magenta" and meta["vocab_size"] == vocab
    assert meta["frames"] == (256 if vocab == 1536 else 512) and meta["min_frames"] == 1
    assert meta["max_new_tokens"] == 1024 and meta["max_len"] == 1024
    assert meta["positions"] == "magenta" and meta["decoding"] == "beam1"
    assert meta["magenta_model"] == ("mt3" if vocab == 1536 else "ismir2021")
    assert meta["n_heads"] == 6 and meta["d_kv"] == 4


def test_encoder_matches_float64_numpy(exported):
    vocab, params, _, out = exported
    module = torch.jit.load(out, map_location="cpu")
    frames = 256 if vocab == 1536 else 512
    rng = np.random.default_rng(5)
    feats = rng.standard_normal((2, frames, 512)).astype(np.float32)
    with torch.inference_mode():
        got = module.encoder_hidden(torch.from_numpy(feats)).numpy().astype(np.float64)
    want = numpy_encoder(params, feats, n_heads=6)
    # Error bound: every float32 dot product of length n <= 512 errs by at most
    # gamma_n = n * 2^-24 <= 3.1e-5 relative to sum |a_i b_i| (Higham 3.1); the
    # weights are N(0, 0.05^2), so sum |a_i b_i| is within ~3x of the result's
    # scale.  Two layers chain ~10 such products, norms and softmaxes (each
    # amplifying by at most a few): 10 * 3 * 3.1e-5 * 3 ~ 3e-3 of the output
    # scale (~1 after the final RMS norm) covers it on every CPU path.
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 3e-3 * scale


def test_same_weights_through_the_mt3_pytorch_path(exported, tmp_path):
    """§8 items 2/4: the T5X weights transposed into the mt3.pth layout and
    exported the MT3-PyTorch way give the same encoder output once the
    positional table is Magenta's, and a different one with the port's."""
    vocab, params, ckpt, out = exported
    cfg = t5x.mt3_config_for(params)
    state = t5x.to_port_state(params)
    pth = tmp_path / "mt3.pth"
    torch.save(state, pth)
    ref = M.load_mt3(str(pth), cfg)
    rt = M.MT3Runtime.from_reference(ref)  # the port's positional table
    mag = torch.jit.load(out, map_location="cpu")
    frames = cfg.max_frames
    x = torch.from_numpy(np.random.default_rng(9).standard_normal((1, frames, 512)).astype(np.float32))
    with torch.inference_mode():
        port_out = rt.encoder_hidden(x)
        mag_out = mag.encoder_hidden(x)
        rt.enc_pe.copy_(torch.from_numpy(magenta.magenta_position_table(frames, cfg.d_model)))
        fixed = rt.encoder_hidden(x)
    # same weights, same ops: only the scripted vs eager dispatch differs
    # (float32 rounding of identical products; bound 1e-5 of the scale ~1)
    assert (fixed - mag_out).abs().max().item() <= 1e-5
    assert (port_out - mag_out).abs().max().item() > 1e-3


def test_family_is_refused_by_the_mt3_adapters(exported):
    from mt3_infer import _core, _engine

    if _engine.engine_library_path() is None:
        pytest.skip("needs the engine library")
    from mt3_infer.exceptions import CheckpointError

    _, _, _, out = exported
    core = _core.AdapterCore("mt3_pytorch")
    with pytest.raises(CheckpointError, match="magenta"):
        core._load_export(_engine.prepare_engine(), out, "cpu", "float32", 0, False)


def test_beam1_decodes_the_magenta_export(exported):
    """The export carries step_top2: Magenta's decoding runs on it."""
    from mt3_infer import _engine

    if _engine.engine_library_path() is None:
        pytest.skip("needs the engine library")
    vocab, _, _, out = exported
    model, meta = _engine.load_engine_model(out, "cpu")
    x = np.random.default_rng(2).standard_normal((3, meta["frames"], 512)).astype(np.float32)
    ids = model.decode(x, max_new_tokens=12, decoding="beam1")
    assert ids.shape[:2] == (3, 1) and (ids >= 0).all() and (ids < vocab).all()


def numpy_decoder(params, enc, tokens, n_heads):
    """§4.2 decoder in float64, whole sequence at once (no cache): token
    embedding + Magenta PE, per layer pre-norm causal self-attention,
    pre-norm cross-attention to ``enc``, gated-gelu MLP (no scaling, no
    biases), final norm and the logits kernel.  tokens [B, n] -> logits
    [B, n, V]."""
    P = {k: v.astype(np.float64) for k, v in params.items()}
    b, n = tokens.shape
    d = P["decoder/token_embedder/embedding"].shape[1]
    x = P["decoder/token_embedder/embedding"][tokens] + np.stack([closed_form_row(p, d) for p in range(n)])
    causal = np.triu(np.full((n, n), -np.inf), 1)

    def attend(q, k, v, mask):
        def heads(a):
            return a.reshape(b, a.shape[1], n_heads, -1).transpose(0, 2, 1, 3)

        s = heads(q) @ heads(k).transpose(0, 1, 3, 2) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        return (s @ heads(v)).transpose(0, 2, 1, 3).reshape(b, q.shape[1], -1)

    i = 0
    while f"decoder/layers_{i}/self_attention/query/kernel" in P:
        q_ = f"decoder/layers_{i}/"
        h = rms(x, P[q_ + "pre_self_attention_layer_norm/scale"])
        q, k, v = (h @ P[q_ + f"self_attention/{m}/kernel"] for m in ("query", "key", "value"))
        x = x + attend(q, k, v, causal) @ P[q_ + "self_attention/out/kernel"]
        h = rms(x, P[q_ + "pre_cross_attention_layer_norm/scale"])
        q = h @ P[q_ + "encoder_decoder_attention/query/kernel"]
        k, v = (enc @ P[q_ + f"encoder_decoder_attention/{m}/kernel"] for m in ("key", "value"))
        x = x + attend(q, k, v, 0.0) @ P[q_ + "encoder_decoder_attention/out/kernel"]
        h = rms(x, P[q_ + "pre_mlp_layer_norm/scale"])
        x = x + (gelu_tanh(h @ P[q_ + "mlp/wi_0/kernel"]) * (h @ P[q_ + "mlp/wi_1/kernel"])) @ P[q_ + "mlp/wo/kernel"]
        i += 1
    return rms(x, P["decoder/decoder_norm/scale"]) @ P["decoder/logits_dense/kernel"]


def test_decoder_steps_match_float64_numpy(exported):
    """The export's cached decoder steps (self-attention cache, cross K/V of
    its own encoder) against the whole-sequence float64 forward of §4.2 on
    the float64 encoder output, for 12 positions of 2 rows."""
    vocab, params, _, out = exported
    module = torch.jit.load(out, map_location="cpu")
    meta = common.read_artifact_meta(out)
    frames = meta["frames"]
    rng = np.random.default_rng(17)
    feats = rng.standard_normal((2, frames, 512)).astype(np.float32)
    tokens = np.concatenate([np.zeros((2, 1), np.int64), rng.integers(0, vocab, (2, 11))], axis=1)
    want = numpy_decoder(params, numpy_encoder(params, feats, n_heads=6), tokens, n_heads=6)
    n_layers, heads, dkv = meta["n_layers"], meta["n_heads"], meta["d_kv"]
    sk = torch.zeros(n_layers, 2, heads, tokens.shape[1], dkv)
    sv = torch.zeros_like(sk)
    got = []
    with torch.inference_mode():
        ck, cv = module.encode(torch.from_numpy(feats))
        for j in range(tokens.shape[1]):
            got.append(module.step_logits(torch.from_numpy(tokens[:, j]), j, sk, sv, ck, cv).numpy())
    got = np.stack(got, 1).astype(np.float64)
    # Bound: the encoder's 3e-3 of its output scale (test above) carries into
    # the cross K/V; each decoder layer adds ~10 float32 products of length
    # <= 48 (gamma_48 = 48 * 2^-24 = 2.9e-6 relative to sum |a_i b_i|, ~3x the
    # result), i.e. ~1e-4 per layer; two layers, norms and softmaxes with
    # gains of a few: 3e-3 + 2 * 3 * 1e-4 < 5e-3 of the logits' scale.
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 5e-3 * scale
    # the check can fail: logits one position off (the cache indexing a step
    # late or early) are far outside the bound
    assert np.abs(got[:, 1:] - want[:, :-1]).max() > 5e-3 * scale

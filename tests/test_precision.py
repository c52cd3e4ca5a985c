"""The opt-in reduced precisions: bf16 (CPUs with AVX512-BF16, CUDA) and int8
dynamic quantization of the decoder's linears (CPU).

References are float64 NumPy computations of the spec's formulas on exactly
the values the kernels see; each tolerance is the rounding bound of the
precision, derived beside the assertion.  Each test also shows that the bound
is tight enough to catch the mistake it guards against (a 1/sqrt(d) scale, a
weight taken for another)."""
import os

import numpy as np
import pytest

from mt3_infer import _engine

torch = pytest.importorskip("torch")

import fixtures_mt3 as fx  # noqa: E402
from mt3_infer.export import mt3 as M  # noqa: E402
from mt3_infer.export._groups import attend  # noqa: E402

needs_engine = pytest.mark.skipif(_engine.engine_library_path() is None, reason="needs the engine library")


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            return " avx512_bf16" in fh.read()
    except OSError:
        return False


def softmax_attention64(q, k, v, scale=1.0):
    """softmax(scale * q k^T) v in float64, over the last two dims."""
    s = scale * np.einsum("...qd,...kd->...qk", q, k)
    s -= s.max(-1, keepdims=True)
    w = np.exp(s)
    w /= w.sum(-1, keepdims=True)
    return np.einsum("...qk,...kd->...qd", w, v)


# Shapes of the three attentions: cross (one query, 256 frames), the self cache
# at position 39 (40 keys), the encoder (T x T).
SHAPES = [((3, 6, 1, 64), (3, 6, 256, 64)), ((3, 6, 1, 64), (3, 6, 40, 64)), ((2, 6, 16, 64), (2, 6, 16, 64))]


@pytest.mark.parametrize("qs,ks", SHAPES)
def test_attend_float32_is_the_unscaled_formula(qs, ks):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(s, generator=g) * 0.3 for s in (qs, ks, ks))
    got = attend(q, k, v).double().numpy()
    want = softmax_attention64(q.double().numpy(), k.double().numpy(), v.double().numpy())
    # fp32: scores are 64-term dot products (|q.k| <~ 6 here), exp and the
    # normalisation add a few ulps, the weighted sum has <= 256 terms of
    # |v| <= max|v|: error <= ~(64 * 6 + 256 * 4) * 2^-24 * max|v| ~ 1e-4 * max|v|.
    tol = 1e-4 * np.abs(want).max()
    assert np.abs(got - want).max() <= tol


@pytest.mark.parametrize("qs,ks", SHAPES)
def test_attend_bfloat16_is_the_unscaled_formula(qs, ks):
    g = torch.Generator().manual_seed(2)
    q, k, v = ((torch.randn(s, generator=g) * 0.3).to(torch.bfloat16) for s in (qs, ks, ks))
    got = attend(q, k, v)
    assert got.dtype == torch.bfloat16
    got = got.double().numpy()
    q64, k64, v64 = (t.double().numpy() for t in (q, k, v))  # exactly the bf16 values
    want = softmax_attention64(q64, k64, v64)
    vmax = np.abs(v64).max()
    # bf16 (8-bit significand, unit roundoff 2^-9): the fused kernel may round
    # the softmax weights to bf16 before the product with V (error <= 2^-9 *
    # sum_j p_j |v_j| <= 2^-9 * max|v|) and rounds the output (<= 2^-9 *
    # |out| <= 2^-9 * max|v|); its fp32 accumulation adds <= 1e-4 * max|v|
    # (the fp32 bound above).  Total <= (2^-8 + 1e-4) * max|v|.
    tol = (2.0 ** -8 + 1e-4) * vmax
    assert np.abs(got - want).max() <= tol
    # the bound would catch SDPA's default 1/sqrt(d_kv) scale (T5 has none)
    scaled = softmax_attention64(q64, k64, v64, scale=1 / 8)
    assert np.abs(scaled - want).max() > 4 * tol


def _mt3_linears(tmp_path):
    rt = M.MT3Runtime.from_reference(M.load_mt3(fx.write_checkpoint(str(tmp_path), seed=1)).eval())
    weights = []
    for layer in rt.dec_layers:
        weights += [layer.wqkv, layer.wo, layer.wq_c, layer.wo_c, layer.wi, layer.wff]
    return rt, weights + [rt.lm_head]


def _yourmt3_linears(tmp_path):
    import fixtures_yourmt3 as fy
    from mt3_infer.export import yourmt3 as Y

    ck = str(tmp_path / "last.ckpt")
    fy.make_checkpoint(ck, fy.SMALL)
    net, _ = Y.build_model(ck)
    weights = []
    for l in range(net.n_layers):
        weights += [net.w_qkv[l], net.w_o[l], net.w_cq[l], net.w_co[l], net.w_i[l], net.w_fo[l]]
    return net, weights + [net.lm_head]


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
@pytest.mark.parametrize("family", ["mt3", "yourmt3"])
def test_int8_decoder_linears_within_the_quantization_bound(tmp_path, family):
    net, weights = (_mt3_linears if family == "mt3" else _yourmt3_linears)(tmp_path)
    assert net.prepack_int8() == len(weights)
    g = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        for idx, w in enumerate(weights):
            x = torch.randn(5, w.size(1), generator=g)
            got = net._lin(x, w, idx).double().numpy()
            x64, w64 = x.double().numpy(), w.detach().double().numpy()
            want = x64 @ w64.T
            # Weights: symmetric per output row, step s_w = max|w_j| / 127,
            # rounding error <= s_w / 2 per weight.  Activations: one affine
            # scale per call over [min(x, 0), max(x, 0)] in 127 levels (the
            # reduced range), step s_x, error <= s_x / 2 per value.  Products
            # sum exactly in int32, then one fp32 rescale.  Per output j:
            # |err_j| <= sum_k (|x_k| s_w/2 + |w_jk| s_x/2 + s_x s_w / 4) + 1e-5 * sum_k |x_k w_jk|.
            s_w = np.abs(w64).max(1) / 127.0
            lo, hi = min(x64.min(), 0.0), max(x64.max(), 0.0)
            s_x = (hi - lo) / 127.0
            ax, aw = np.abs(x64), np.abs(w64)
            bound = (ax.sum(1, keepdims=True) * s_w[None, :] / 2 + aw.sum(1)[None, :] * s_x / 2
                     + w64.shape[1] * s_x * s_w[None, :] / 4 + 1e-5 * ax @ aw.T)
            assert (np.abs(got - want) <= bound).all(), idx
            # ... and would catch a weight taken for another of the same shape
            other = [o for o in weights if o is not w and o.shape == w.shape]
            if other:
                wrong = x64 @ other[0].detach().double().numpy().T
                assert (np.abs(wrong - want) > bound).any()


@needs_engine
def test_int8_engine_decodes_and_refuses_on_cuda(tmp_path):
    ckpt = fx.write_checkpoint(str(tmp_path), **fx.EOS_MIX[0])
    exp = str(tmp_path / "mt3.export.pt")
    M.export_mt3(ckpt, exp)
    model, meta = _engine.load_engine_model(exp, "cpu", dtype="int8")
    x = fx.random_features(4, 256, seed=9)
    ids = model.decode(x, max_new_tokens=16)
    assert ids.shape[:2] == (4, 1)
    assert ((ids >= 0) & (ids < meta["vocab_size"])).all()
    if not torch.cuda.is_available():
        with pytest.raises(Exception, match="CUDA"):
            _engine.load_engine_model(exp, "cuda", dtype="int8")


@needs_engine
def test_bfloat16_on_the_cpu(tmp_path):
    ckpt = fx.write_checkpoint(str(tmp_path), **fx.EOS_MIX[0])
    exp = str(tmp_path / "mt3.export.pt")
    M.export_mt3(ckpt, exp)
    if not cpu_has_bf16():
        with pytest.raises(ValueError, match="AVX512-BF16"):
            _engine.load_engine_model(exp, "cpu", dtype="bfloat16")
        return
    model, meta = _engine.load_engine_model(exp, "cpu", dtype="bfloat16")
    x = fx.random_features(4, 256, seed=9)
    ids = model.decode(x, max_new_tokens=16)
    assert ids.shape[:2] == (4, 1)
    assert ((ids >= 0) & (ids < meta["vocab_size"])).all()


@needs_engine
@pytest.mark.skipif(os.environ.get("MT3_SKIP_BUNDLED") == "1", reason="bundled model tests off")
@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
def test_bundled_model_transcribes_at_reduced_precision(dtype):
    from mt3_infer.adapters import MT3SmallAdapter
    from mt3_infer.utils.midi import midi_to_notes

    if dtype == "bfloat16" and not cpu_has_bf16():
        pytest.skip("this CPU has no AVX512-BF16")
    t = np.arange(32000) / 16000.0
    audio = (0.3 * np.sin(2 * np.pi * 440.0 * t) * (t % 0.5 < 0.3)).astype(np.float32)
    a = MT3SmallAdapter(dtype=dtype)
    a.load_model()
    data = a.transcribe_bytes(audio, 16000)
    assert data[:4] == b"MThd"
    notes = midi_to_notes(data)  # parses, and holds valid notes
    assert ((notes["offset"] >= notes["onset"]) & (notes["onset"] >= 0)).all()
    a.unload()

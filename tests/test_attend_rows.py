"""mt3::attend_rows (csrc/engine/engine_torch.cpp): the decoder step's
attention over rows at different positions.

Checked against a float64 NumPy softmax attention written from its
definition (T5: no 1/sqrt(Dh) scaling), with a per-element error bound
derived below; and, bit for bit, that a row's result does not depend on the
other rows of its call (grouping, batch composition, thread count) -- the
property that makes continuous batching give the drained batches' MIDI.
Runs on every kernel the engine has: the Makefile's isa-run repeats it with
ATEN_CPU_CAPABILITY=avx2 and =default.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mt3_infer import _engine  # noqa: E402

if _engine.engine_library_path() is None:
    pytest.skip("built without the libtorch engine", allow_module_level=True)

from mt3_infer.export import _groups  # noqa: E402  (registers the engine's operators)

U = 2.0 ** -24  # unit roundoff of float32


def gamma(n):
    return n * U / (1 - n * U)


def reference_and_bound(q, k, v, lens):
    """float64 attention of each row over its first lens[r] positions, and a
    bound on the float32 kernel's error, per element.

    Scores s_p = q.k_p: any summation order of Dh products errs by at most
    E_s = gamma(Dh) * sum_d |q_d k_pd|.  Softmax of perturbed scores: each
    weight's relative error is at most e^(2 E_s) - 1 from the scores, plus
    u * (m - s_p) from rounding the shifted argument, 2u from exp (glibc:
    < 1 ulp) and its rounding, gamma(len) from the sum, 2u from the
    normalisation: eps_w.  The weighted sum of values adds gamma(len)
    relative to sum_p w_p |v_pd|.  So
        |o_d - o*_d| <= ((1 + eps_w)(1 + gamma(len)) - 1) * sum_p w_p |v_pd|.
    """
    n, h, dh = q.shape
    out = np.zeros((n, h, dh))
    bound = np.zeros((n, h, dh))
    for r in range(n):
        ln = lens[r]
        for j in range(h):
            qq = q[r, j].astype(np.float64)
            kk = k[r, j, :ln].astype(np.float64)
            vv = v[r, j, :ln].astype(np.float64)
            s = kk @ qq
            m = s.max()
            w = np.exp(s - m)
            w /= w.sum()
            out[r, j] = w @ vv
            e_s = gamma(dh) * (np.abs(kk) @ np.abs(qq)).max()
            eps_w = np.expm1(2 * e_s) + U * (m - s).max() + 4 * U + gamma(ln)
            bound[r, j] = ((1 + eps_w) * (1 + gamma(ln)) - 1) * (w @ np.abs(vv))
    return out.reshape(n, h * dh), bound.reshape(n, h * dh)


def make(n, h, s, dh, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, h, dh, generator=g)
    k = torch.randn(n, h, s, dh, generator=g)
    v = torch.randn(n, h, s, dh, generator=g)
    return q, k, v


def row_lens(sizes, lens):
    return [ln for sz, ln in zip(sizes, lens) for _ in range(sz)]


@pytest.mark.parametrize("dh", [64, 48, 20])  # 64: the vector kernels; 48: AVX2 only; 20: the portable one
def test_matches_float64_attention_within_the_bound(dh):
    sizes, lens = [2, 1, 3], [37, 1, 90]
    q, k, v = make(6, 3, 96, dh, seed=dh)
    got = _groups.attend_rows(q, k, v, sizes, lens).double().numpy()
    want, bound = reference_and_bound(q.numpy(), k.numpy(), v.numpy(), row_lens(sizes, lens))
    err = np.abs(got - want)
    assert (err <= bound).all(), (err.max(), bound[err > bound][:5])
    assert err.max() > 0 or dh == 20  # float32, not a copy of the reference


def test_a_row_does_not_depend_on_the_other_rows():
    # the same 5 rows: each alone, all in one call as 3 groups, and after
    # other rows (a different batch) -- identical bits every way
    q, k, v = make(8, 3, 200, 64, seed=1)
    lens = [200, 17, 17, 130, 1]
    sizes, glens = [1, 2, 1, 1], [200, 17, 130, 1]
    together = _groups.attend_rows(q[:5], k[:5], v[:5], sizes, glens)
    for r in range(5):
        alone = _groups.attend_rows(q[r:r + 1], k[r:r + 1], v[r:r + 1], [1], [lens[r]])
        assert torch.equal(alone[0], together[r]), r
    later = _groups.attend_rows(q[[7, 6, 0, 1, 2, 3, 4]], k[[7, 6, 0, 1, 2, 3, 4]], v[[7, 6, 0, 1, 2, 3, 4]],
                                [2] + sizes, [50] + glens)
    assert torch.equal(later[2:], together)
    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread = _groups.attend_rows(q[:5], k[:5], v[:5], sizes, glens)
    finally:
        torch.set_num_threads(prev)
    assert torch.equal(one_thread, together)


def test_reads_strided_cache_views():
    # the decoder passes views of its caches: rows and positions narrowed
    q, k, v = make(4, 3, 64, 64, seed=2)
    big_k = torch.zeros(2, 6, 3, 128, 64)
    big_v = torch.zeros(2, 6, 3, 128, 64)
    big_k[1, :4, :, :64] = k
    big_v[1, :4, :, :64] = v
    qkv = torch.stack([q, q * 2, q * 3], 1)  # q as the strided select of a fused projection
    view = _groups.attend_rows(qkv.select(1, 0), big_k.select(0, 1).narrow(0, 0, 4),
                               big_v.select(0, 1).narrow(0, 0, 4), [4], [64])
    assert torch.equal(view, _groups.attend_rows(q, k, v, [4], [64]))


def test_below_fp32_runs_the_plain_attention_per_group():
    q, k, v = make(3, 2, 16, 64, seed=3)
    q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    got = _groups.attend_rows(q, k, v, [2, 1], [16, 5])
    a = _groups.attend(q[:2].unsqueeze(2), k[:2], v[:2]).reshape(2, 128)
    b = _groups.attend(q[2:].unsqueeze(2), k[2:, :, :5], v[2:, :, :5]).reshape(1, 128)
    assert torch.equal(got, torch.cat([a, b]))


@pytest.mark.parametrize("sizes,lens,match", [
    ([2], [10], "add up"),
    ([3], [0], "length outside"),
    ([3], [17], "length outside"),
    ([1, 2], [4], "one length"),
    ([0, 3], [4, 4], "empty group"),
])
def test_refuses_inconsistent_groups(sizes, lens, match):
    q, k, v = make(3, 2, 16, 64, seed=4)
    with pytest.raises(RuntimeError, match=match):
        _groups.attend_rows(q, k, v, sizes, lens)


def test_refuses_mismatched_shapes():
    q, k, v = make(3, 2, 16, 64, seed=5)
    with pytest.raises(RuntimeError, match="disagree in shape"):
        _groups.attend_rows(q, k[:, :1], v, [3], [16])
    with pytest.raises(RuntimeError, match="must be"):
        _groups.attend_rows(q[0], k, v, [3], [16])

"""NumPy float64 transcription of the torchaudio windowed-sinc resampler
(specs/yourmt3.md §2.2) and the error bounds of the C resamplers against it.
"""
import math

import numpy as np


def ceil_div(a, b):
    return -(-a // b)


def sinc_kernel(a, b, W, base, dtype):
    """h[j][n] of §2.2 step 3 for n = -W..W+a-1, evaluated in `dtype`
    (float64: the formula; float32: "the kernel is built in the waveform dtype")."""
    f = np.dtype(dtype).type
    idx = np.arange(-W, W + a, dtype=dtype) / f(a)
    tj = np.arange(0, -b, -1, dtype=dtype) / f(b)
    t = (tj[:, None] + idx[None, :]) * f(base)
    t = np.clip(t, f(-6.0), f(6.0))
    window = np.cos(t * f(np.pi) / f(6.0) / f(2.0)) ** 2
    pt = t * f(np.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(pt == 0, f(1.0), np.sin(pt) / pt)
    return (s * (window * f(base / a))).astype(np.float64)


def sinc_parts(sr, new=16000):
    g = math.gcd(sr, new)
    a, b = sr // g, new // g
    base = min(a, b) * 0.99
    W = math.ceil(6 * a / base)
    return a, b, W, base


def sinc_apply(x, sr, h, new=16000):
    """Outputs of kernel h (b, 2W + a) on x, all in float64."""
    x = np.asarray(x, dtype=np.float64)
    a, b, W, _ = sinc_parts(sr, new)
    xp = np.concatenate([np.zeros(W), x, np.zeros(W + a)])
    win = np.lib.stride_tricks.sliding_window_view(xp, 2 * W + a)[::a]  # (K, taps)
    out = (win @ h.T).reshape(-1)  # output k*b + j
    return out[: ceil_div(b * len(x), a)]


def sinc_reference(x, sr, new=16000, kernel_dtype=np.float64):
    a, b, W, base = sinc_parts(sr, new)
    return sinc_apply(x, sr, sinc_kernel(a, b, W, base, kernel_dtype), new)


U = 2.0 ** -24


# soxr_hq evaluated twice (our libsoxr, python-soxr's bundled build; either may
# take another SIMD path): each is a chain of <= 3 float32 filter stages, each an
# FFT convolution of <= 2**13 points, <= 13 levels of <= 8u (Higham Thm 24.2:
# eta <= 6.7u per level), relative to sum |h||x| <= L1 max|x|, where L1, the
# largest row sum |h| of its filters, is <= 5 measured from python-soxr's impulse
# responses at 8-96 kHz; 8 is used.  Two sides: 2 x 3 x 13 x 8u x 8 max|x|.
SOXR_TWO_EVALS = 2 * 3 * 13 * 8 * U * 8


def sinc_bounds(x, sr):
    """Error bounds of the C sinc resampler per output sample (yourmt3.md §2.2).

    Kernel: C and the float32 reference run the same IEEE operations on the same
    float32 values except sin/cos (glibc vs NumPy's SIMD code, each within 2 ulp):
    cos^2 doubles cos's error (2 x 2u), sin adds 2u, and each of the <= 4 later
    roundings (square, divide, two products) may then round differently on each
    side (2 x 4u): |h_C - h32| <= (2 x (4 + 2) + 8) u |h32| = 20u |h32| < 24u |h32|.
    Sum: C accumulates each dot product in 8 lanes of ceil(taps/8) terms, a tree
    of 3 adds and <= 7 tail terms: depth d <= ceil(taps/8) + 10 sequential adds
    plus the products' rounding, |error| <= gamma_(d+1) sum |h||x| (Higham Thm 3.1).
    Returns (bound vs the float32-kernel reference, bound vs the exact formula);
    the second adds sum |h32 - h64| |x|, the float32 kernel's own distance from
    the formula, computed exactly in float64."""
    a, b, W, base = sinc_parts(sr)
    taps = 2 * W + a
    d = -(-taps // 8) + 11
    gamma = d * U / (1 - d * U)
    h32 = sinc_kernel(a, b, W, base, np.float32)
    h64 = sinc_kernel(a, b, W, base, np.float64)
    ax = np.abs(np.asarray(x, np.float64))
    b32 = (gamma + 24 * U) * sinc_apply(ax, sr, np.abs(h32))
    return b32, b32 + sinc_apply(ax, sr, np.abs(h32 - h64))

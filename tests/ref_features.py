"""Float64 references of the four feature presets, written from the specs, and
the error bounds that the float32 C code must stay within.

specs/mt3-family.md §2 (mr_mt3, mt3_pytorch, mt3_reference) and
specs/yourmt3.md §2.3-3 (yourmt3).  Everything here is float64 from the
float32 input samples: framing, periodic Hann, np.fft.rfft, the filterbanks of
§2.3/§2.4 in their exact (double) definition, logs.  No float32 step of any
framework is emulated, so the reference is the same on every CPU.

Error bounds (u = 2**-24, the float32 unit roundoff)
----------------------------------------------------
The C code rounds in float32 only up to and including the FFT; from the FFT
output on it works in double and rounds each output value once
(csrc/core/features.c).  Per STFT frame t with raw samples x_t (2048 values):

1. Window.  C uses torch's float32 table w~[n] = fl(fl(cos(fl(n * s~))) * -0.5 + 0.5),
   s~ = fl(2 pi / 2048).  |s~ - s| <= u s and the product adds u: the angle is
   off by <= 2u * 2 pi; cos is 1-Lipschitz, then two more roundings of values
   <= 1: |w~ - w| <= 0.5 * (4 pi u + u) + u = (2 pi + 1.5) u < 8 u.
   The product fl(x * w~) adds u |x w|.  Input error vector e:
   ||e||_2 <= 8u (1 + u) ||x_t||_2 + u ||x_t w||_2 <= 9.1 u ||x_t||_2.
   Through the (exact) DFT: ||DFT e||_2 = sqrt(N) ||e||_2.
2. FFT.  Higham, Accuracy and Stability of Numerical Algorithms, Thm 24.2:
   a radix-2 FFT of depth L computed in floating point has
   ||y^ - y||_2 <= L eta / (1 - L eta) ||y||_2, eta = mu + gamma_4 (sqrt 2 + mu),
   mu = twiddle error.  kissfft's twiddles come from double cos/sin rounded to
   float (mu <= u); its real FFT is a complex FFT of N/2 = 1024 points
   (10 radix-2 levels' worth of butterflies; radix-4 butterflies are two such
   levels) plus one twiddled split stage: L = 11.
   eta = u + 4u/(1-4u) (1.4143) <= 6.66 u, L eta <= 73.3 u; with the split
   stage's extra additions counted we use 80 u.  ||y||_2 = sqrt(N) ||x_t w||_2
   (Parseval; the one-sided bins are a subset of the full spectrum).
   Together, for the one-sided bins k = 0..1024:
       E_t = sqrt(sum_k |X^_k - X_k|^2) <= sqrt(N) u (80 ||x_t w||_2 + 9.1 ||x_t||_2)
   and each single bin |X^_k - X_k| <= E_t.
3. After the FFT (double, one float32 rounding of each output).
   |X|^2 = re^2 + im^2 of float32 re, im is exact in double.
   Filterbank weights FB~ = fl32(FB): |FB~ - FB| <= u FB.
   Magnitude mel (mr_mt3, mt3_reference):
       |M^ - M| <= (1 + u) ||FB_m||_2 E_t + u M + u M        (Cauchy-Schwarz; FB, final rounding)
   Power mel (mt3_pytorch): | |X^|^2 - |X|^2 | <= |dX| (2 |X| + |dX|), so
       |M^ - M| <= (1 + u) (2 ||FB_m * |X| ||_2 E_t + max_k FB_km E_t^2) + 2 u M
   The double sums add len * 2**-53 relative, far below u (counted as 1e-3 u).
   Log ln(M + eps): |dL| <= B / (M + eps - B) + u |L| (mean value theorem and
   the final rounding), where B is the linear bound; unbounded where B >= M + eps
   (such entries are not compared).  The floor rule of mr_mt3 (values <= 0 ->
   1e-5) applies to exact zeros only (empty bands, zeroed rows): there C and
   reference give the same float32 constant.
   yourmt3: | |X^_k| - |X_k| | <= E_t, so B = E_t + u |X| and the log bound as
   above.  Its normalisation n = (L - lo) / (hi - lo + 0.008) is bounded in
   `yourmt3_norm_bound`.
"""
from __future__ import annotations

import math

import numpy as np

U = 2.0 ** -24
SR = 16000
NFFT = 2048
FRAMES = {"mr_mt3": 256, "mt3_pytorch": 257, "mt3_reference": 256, "mt3_reference_512": 512, "yourmt3": 110}
# hops (128 samples) per segment: 2.048 s, or 4.096 s for ismir2021 (specs/magenta-t5x.md §5.2)
HOPS = {"mr_mt3": 256, "mt3_pytorch": 256, "mt3_reference": 256, "mt3_reference_512": 512}
BINS = {"mr_mt3": 512, "mt3_pytorch": 512, "mt3_reference": 512, "yourmt3": 1024}
# float32 constants of the anchor, as exact doubles
EPS_MR = float(np.float32(1e-5))
EPS_PT = float(np.float32(1e-6))
EPS_Y = float(np.float32(1e-5))
DEN_Y = float(np.float32(0.008))


def f32_log(v):
    """ln(v) correctly rounded to float32 (via double): the floors the spec names."""
    return np.float32(math.log(v))


def hann():
    n = np.arange(NFFT)
    return 0.5 - 0.5 * np.cos(2 * np.pi * n / NFFT)


def torchaudio_fb(f_max):
    """§2.3 melscale_fbanks (1025, 512): HTK mel edges linspace(mel(20), mel(f_max), 514),
    triangles in Hz, all in float64."""
    m = np.linspace(2595.0 * math.log10(1 + 20 / 700), 2595.0 * math.log10(1 + f_max / 700), 514)
    f = 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    freqs = np.linspace(0.0, 8000.0, 1025)
    up = (freqs[:, None] - f[:-2]) / (f[1:-1] - f[:-2])
    down = (f[2:] - freqs[:, None]) / (f[2:] - f[1:-1])
    return np.maximum(0.0, np.minimum(up, down))


def tf_fb():
    """§2.4 linear_to_mel_weight_matrix(512, 1025, 16000, 20, 7600): 1127 ln mel,
    triangles in the mel domain over bins 1..1024, DC row zero (float64)."""

    def mel(hz):
        return 1127.0 * np.log(1.0 + np.asarray(hz) / 700.0)

    edges = np.linspace(mel(20.0), mel(7600.0), 514)
    bins = mel(np.linspace(0.0, 8000.0, 1025)[1:])
    l, c, h = edges[:-2], edges[1:-1], edges[2:]
    lower = (bins[:, None] - l) / (c - l)
    upper = (h - bins[:, None]) / (h - c)
    w = np.maximum(0.0, np.minimum(lower, upper))
    return np.vstack([np.zeros((1, 512)), w])


_FB = {}


def filterbank(preset):
    if preset not in _FB:
        _FB[preset] = {
            "mr_mt3": lambda: torchaudio_fb(7600.0),
            "mt3_pytorch": lambda: torchaudio_fb(8000.0),
            "mt3_reference": tf_fb,
            "mt3_reference_512": tf_fb,
        }[preset]()
    return _FB[preset]


def mt3_layout(n, preset):
    """Frames F, segments S and valid rows p_i for the MT3 presets (§2.1-2.2)."""
    if n == 0:
        return 0, 0, []
    f = n // 128 if preset == "mr_mt3" else n // 128 + 1  # mr drops the tail; others pad 1..128
    h = HOPS[preset]
    s = -(-f // h)
    return f, s, [min(h, f - h * i) for i in range(s)]


def loud(lin):
    """Entries >= 1e-3 of their segment's peak (axis 0 = segments)."""
    peak = lin.reshape(lin.shape[0], -1).max(axis=1)
    return lin >= (peak / 1e3)[:, None, None]


def stft_error(frames, w):
    """E_t of the module docstring, one value per frame (rows of `frames`)."""
    xn = np.linalg.norm(frames, axis=1)
    xwn = np.linalg.norm(frames * w, axis=1)
    return math.sqrt(NFFT) * U * (80.0 * xwn + 9.1 * xn)


def _log_bound(val, eps, b, log):
    den = val + eps - b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, b / np.where(den > 0, den, 1.0), np.inf)
    return out + U * np.abs(log)


def ref_mt3(x, preset):
    """(linear, log, linear bound, log bound, valid rows): arrays (S, T, 512) in float64."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    n = len(x)
    f, s, valid = mt3_layout(n, preset)
    xs = np.zeros(f * 128)
    m = min(n, f * 128)
    xs[:m] = x[:m]
    T = FRAMES[preset]
    fb = filterbank(preset)
    fb_norm = np.linalg.norm(fb, axis=0)       # ||FB_m||_2
    fb_max = fb.max(axis=0)
    w = hann()
    shape = (s, T, 512)
    lin, log, blin, blog = (np.zeros(shape) for _ in range(4))
    L = 128 * HOPS[preset]  # segment samples
    for i, p in enumerate(valid):
        seg = np.zeros(L)
        chunk = xs[L * i: L * i + 128 * p]
        seg[: len(chunk)] = chunk
        if preset == "mt3_pytorch":
            padded = np.pad(seg, 1024, mode="reflect")
        else:
            padded = np.concatenate([seg, np.zeros(1920)])
        frames = np.stack([padded[128 * t: 128 * t + NFFT] for t in range(T)])
        mag = np.abs(np.fft.rfft(frames * w, axis=1))
        E = stft_error(frames, w)[:, None]
        if preset == "mt3_pytorch":
            e = (mag ** 2) @ fb
            lg = np.log(e + EPS_PT)
            cs = np.sqrt((mag ** 2) @ (fb ** 2))  # ||FB_m * |X| ||_2
            b = (1 + U) * (2 * cs * E + fb_max[None, :] * E ** 2) + 2.001 * U * e
            bl = _log_bound(e, EPS_PT, b, lg)
        else:
            e = mag @ fb
            lg = np.log(np.where(e <= 0, EPS_MR, e))
            b = (1 + U) * fb_norm[None, :] * E + 2.001 * U * e
            # empty bands (b = 0): the same floor constant, rounded once on each side
            bl = np.where((e <= 0) & (b == 0), U * np.abs(lg), _log_bound(e, 0.0, b, lg))
        for a in (e, lg, b, bl):
            a[p:] = 0.0
        lin[i], log[i], blin[i], blog[i] = e, lg, b, bl
    return lin, log, blin, blog, valid


def ref_yourmt3(x):
    """yourmt3 §2.3 + §3: (|X|, log, normalised, |X| bound, log bound, log upper
    deviation), each (S, 110, 1024) float64."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    L = 32767
    s = -(-len(x) // L)
    w = hann()
    out = [[] for _ in range(6)]
    for i in range(s):
        seg = np.zeros(L)
        chunk = x[i * L: (i + 1) * L]
        seg[: len(chunk)] = chunk
        xp = np.pad(seg, 1024, mode="reflect")
        frames = np.stack([xp[300 * m: 300 * m + NFFT] for m in range(110)])
        mag = np.abs(np.fft.rfft(frames * w, axis=1))[:, 1:1025]
        E = stft_error(frames, w)[:, None]
        lg = np.log(mag + EPS_Y)
        lo, hi = lg.min(), lg.max()
        b = E + U * mag
        # C's log can exceed the reference by at most ln(1 + b/(|X|+eps)) + rounding
        up = np.log1p(b / (mag + EPS_Y)) + U * (np.abs(lg) + 1e-6)
        for lst, a in zip(out, (mag, lg, (lg - lo) / (hi - lo + DEN_Y), b,
                                _log_bound(mag, EPS_Y, b, lg), up)):
            lst.append(a)
    return tuple(np.array(a) for a in out)


def yourmt3_norm_bound(r_log, b_log, up_log):
    """Bound on |n^ - n| per element of one segment, n = (L - lo) / (hi - lo + c).

    lo: the exact silence floor on both sides (callers make sure a segment has a
    silent stretch longer than a window, so |X| = 0 exactly and L = ln(eps) in
    both); the two roundings differ by <= u |lo|.  hi: C's max lies between the
    peak's lower bound and max_i(L_i + up_i).  D = hi - lo + c, |dD| <= dhi + dlo,
    |dn| <= (|dL| + dlo + |n| |dD|) / (D - |dD|) + u |n| (final float32 rounding)."""
    lo, hi = r_log.min(), r_log.max()
    dlo = U * abs(lo)
    k = np.unravel_index(np.argmax(r_log), r_log.shape)
    dhi = max(b_log[k], (r_log + up_log).max() - hi)
    D = hi - lo + DEN_Y
    dD = dhi + dlo + 2 * U * D
    n = (r_log - lo) / D
    return (b_log + dlo + np.abs(n) * dD) / (D - dD) + U * np.abs(n)

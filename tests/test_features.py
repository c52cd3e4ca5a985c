"""Feature presets against the float64 references of tests/ref_features.py,
written from the specs (specs/mt3-family.md §2, specs/yourmt3.md §2.3-3), with
per-element error bounds derived there (the arithmetic is in its docstring).
"""
import math

import numpy as np
import pytest

import mt3_infer
from mt3_infer import AudioError, _core
from ref_features import (
    BINS, FRAMES, U, f32_log, filterbank, loud, mt3_layout as ref_mt3_layout, ref_mt3, ref_yourmt3,
    torchaudio_fb, yourmt3_norm_bound,
)

SR = 16000
PRESETS = ("mr_mt3", "mt3_pytorch", "mt3_reference", "yourmt3")


def assert_within(c, r, bound, what, cover=None):
    """|c - r| <= bound elementwise wherever the bound is finite.  The bound is
    infinite only for logs of values within their own error bound of zero (the
    round-off floor of a pure tone's far bins); `cover` (default: everything)
    marks entries that must have a finite bound, e.g. linear values >= peak/1e3
    of their segment."""
    c = np.asarray(c, np.float64)
    assert c.shape == r.shape, (what, c.shape, r.shape)
    fin = np.isfinite(bound)
    if cover is None:
        cover = np.ones(r.shape, bool)
    assert np.all(fin[cover]), f"{what}: {int((~fin & cover).sum())} entries have no bound"
    err = np.abs(c - r)
    bad = fin & (err > bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err / np.where(bound > 0, bound, 1e-300), 0)),
                             err.shape)
        raise AssertionError(f"{what}: {int(bad.sum())} entries outside the bound; worst at {i}: "
                             f"C {c[i]!r} ref {r[i]!r} error {err[i]:.3g} bound {bound[i]:.3g}")


# ----------------------------------------------------------------------------
# test signals (16 kHz)
# ----------------------------------------------------------------------------


def _signals():
    rng = np.random.default_rng(1234)
    t = np.arange(50000) / SR
    sig = {
        "sine440": 0.5 * np.sin(2 * np.pi * 440.0 * t),
        "sine3k": 0.25 * np.sin(2 * np.pi * 3000.0 * t + 0.3),
        "chirp": 0.4 * np.sin(2 * np.pi * (50.0 * t + 0.5 * (7900.0 - 50.0) / t[-1] * t ** 2)),
        "noise": 0.3 * rng.standard_normal(len(t)),
    }
    clicks = np.zeros(41000)
    clicks[::1000] = 0.9
    clicks[517::3001] = -0.6
    sig["clicks"] = clicks
    # a random clip: random length, sines, a noise burst, a silent gap
    n = int(rng.integers(33000, 70000))
    tt = np.arange(n) / SR
    clip = sum(rng.uniform(0.02, 0.2) * np.sin(2 * np.pi * rng.uniform(30, 7800) * tt + rng.uniform(0, 6))
               for _ in range(5))
    a = int(rng.integers(0, n - 5000))
    clip[a: a + 4000] += 0.2 * rng.standard_normal(4000)
    b = int(rng.integers(0, n - 6000))
    clip[b: b + 5000] = 0.0
    sig["random"] = clip
    return {k: v.astype(np.float32) for k, v in sig.items()}


SIGNALS = _signals()


@pytest.mark.parametrize("preset", ["mr_mt3", "mt3_pytorch", "mt3_reference", "mt3_reference_512"])
@pytest.mark.parametrize("name", list(SIGNALS))
def test_mt3_presets_match_reference(preset, name):
    x = SIGNALS[name]
    c_log = mt3_infer.compute_features(x, 16000, preset)
    c_lin = _core.compute_features(x, 16000, preset, stage="linear")
    r_lin, r_log, b_lin, b_log, valid = ref_mt3(x, preset)
    assert_within(c_lin, r_lin, b_lin, f"{preset}/{name} linear")
    assert_within(c_log, r_log, b_log, f"{preset}/{name} log", cover=loud(r_lin))
    for i, p in enumerate(valid):
        assert np.all(c_log[i, p:] == 0.0)


@pytest.mark.parametrize("name", list(SIGNALS))
def test_yourmt3_matches_reference(name):
    x = SIGNALS[name]
    c_lin = _core.compute_features(x, 16000, "yourmt3", stage="linear")
    c_log = _core.compute_features(x, 16000, "yourmt3", stage="log")
    r_mag, r_log, r_norm, b_mag, b_log, _ = ref_yourmt3(x)
    assert_within(c_lin, r_mag, b_mag, f"yourmt3/{name} |X|")
    assert_within(c_log, r_log, b_log, f"yourmt3/{name} log", cover=loud(r_mag))
    c_final = mt3_infer.compute_features(x, 16000, "yourmt3")
    assert c_final.dtype == np.float32 and c_final.shape == r_norm.shape
    assert c_final.min() >= 0.0 and c_final.max() < 1.0


@pytest.mark.parametrize("name", list(SIGNALS))
def test_yourmt3_normalised_output(name):
    # The per-segment minimum is set by the quietest bin.  For a pure tone that
    # is float round-off (no relative bound exists there), so each segment gets
    # an exactly silent stretch longer than one window: then min = ln(1e-5)
    # exactly on both sides, and yourmt3_norm_bound applies.
    x = SIGNALS[name].copy()
    for start in range(0, len(x), 32767):
        x[start + 4000: start + 7000] = 0.0
    c_final = mt3_infer.compute_features(x, 16000, "yourmt3")
    r_mag, r_log, r_norm, _, b_log, up = ref_yourmt3(x)
    assert c_final.shape == r_norm.shape
    for i in range(r_norm.shape[0]):
        assert r_log[i].min() == math.log(np.float32(1e-5))
        assert c_final[i].min() == 0.0
        bound = yourmt3_norm_bound(r_log[i], b_log[i], up[i])
        assert_within(c_final[i], r_norm[i], bound, f"yourmt3/{name} seg {i} normalised",
                      cover=loud(r_mag[i:i + 1])[0])


def test_yourmt3_normalisation_formula_on_c_log():
    # (S - min) / (max - min + 0.008) per segment, applied to the C log stage
    x = SIGNALS["sine440"]
    s = _core.compute_features(x, 16000, "yourmt3", stage="log").astype(np.float64)
    final = mt3_infer.compute_features(x, 16000, "yourmt3")
    for i in range(s.shape[0]):
        lo, hi = s[i].min(), s[i].max()
        want = (s[i] - lo) / (hi - lo + float(np.float32(0.008)))
        # computed in double from the same float32 inputs, rounded once: <= u |n|
        assert np.all(np.abs(final[i] - want) <= U * np.abs(want))


# ----------------------------------------------------------------------------
# filterbank facts from the spec
# ----------------------------------------------------------------------------


def test_reference_filterbanks_have_the_spec_zero_bands():
    # §2.3: bands 1 and 10 (f_max 7600) and 1 and 16 (f_max 8000) are all zero,
    # about 100 bands touch a single bin (106 / 100), peaks <= 1
    for f_max, zeros, single in ((7600.0, [1, 10], 106), (8000.0, [1, 16], 100)):
        fb = torchaudio_fb(f_max)
        assert list(np.flatnonzero(fb.max(axis=0) == 0)) == zeros
        assert int(((fb > 0).sum(axis=0) == 1).sum()) == single
        assert fb.max() <= 1.0
    tf = filterbank("mt3_reference")
    assert np.all(tf[0] == 0)  # DC row


@pytest.mark.parametrize("preset,bands,floor", [
    ("mr_mt3", [1, 10], f32_log(np.float32(1e-5))),
    ("mt3_pytorch", [1, 16], f32_log(np.float32(1e-6))),
])
def test_zero_bands_sit_on_the_log_floor(preset, bands, floor):
    x = SIGNALS["noise"]
    out = mt3_infer.compute_features(x, 16000, preset)
    _, s, valid = ref_mt3_layout(len(x), preset)
    for i, p in enumerate(valid):
        assert np.all(out[i, :p, bands] == np.float32(floor))
        assert np.all(out[i, :p, 0] != np.float32(floor))


# ----------------------------------------------------------------------------
# silence floors
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("preset,floor,spec_value", [
    ("mr_mt3", f32_log(np.float32(1e-5)), -11.512925),
    ("mt3_reference", f32_log(np.float32(1e-5)), -11.512925),
    ("mt3_pytorch", f32_log(np.float32(1e-6)), -13.815511),
])
def test_silence_floor(preset, floor, spec_value):
    n = 40000
    out = mt3_infer.compute_features(np.zeros(n, np.float32), 16000, preset)
    _, s, valid = ref_mt3_layout(n, preset)
    assert out.shape == (s, FRAMES[preset], 512)
    f32 = np.float32(floor)
    assert abs(float(f32) - spec_value) < 1e-6
    for i, p in enumerate(valid):
        assert np.all(out[i, :p] == f32)
        assert np.all(out[i, p:] == 0.0)


def test_silence_yourmt3_is_zero():
    out = mt3_infer.compute_features(np.zeros(70000, np.float64), 16000, "yourmt3")
    assert out.shape == (3, 110, 1024)
    assert np.all(out == 0.0)
    log = _core.compute_features(np.zeros(100, np.float32), 16000, "yourmt3", stage="log")
    assert np.all(log == f32_log(np.float32(1e-5)))


def test_yourmt3_overflow_becomes_finite_zero():
    # |X| overflows float32 -> the segment max is +inf or NaN -> NaN/Inf rule -> 0
    x = np.full(5000, 3e38, np.float32)
    out = mt3_infer.compute_features(x, 16000, "yourmt3")
    assert np.all(np.isfinite(out))
    assert np.all(out == 0.0)


# ----------------------------------------------------------------------------
# shapes, segment counts, valid frames
# ----------------------------------------------------------------------------

NS = [0, 1, 127, 128, 129, 32767, 32768, 32769, 256000]


def expected_layout(n, preset):
    if preset == "yourmt3":
        s = -(-n // 32767)
        return s, [110] * s
    _, s, valid = ref_mt3_layout(n, preset)
    return s, valid


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("n", NS)
def test_layout_and_shapes(preset, n):
    s, valid = expected_layout(n, preset)
    lay = _core.feature_layout(n, preset)
    assert lay["n_segments"] == s
    assert lay["valid_frames"] == valid
    assert (lay["n_frames"], lay["n_bins"]) == (FRAMES[preset], BINS[preset])
    if n == 0:
        with pytest.raises(AudioError, match="empty"):
            mt3_infer.compute_features(np.zeros(0, np.float32), 16000, preset)
        return
    rng = np.random.default_rng(n)
    x = (0.1 * rng.standard_normal(n)).astype(np.float32)
    out = mt3_infer.compute_features(x, 16000, preset)
    assert out.dtype == np.float32
    assert out.shape == (s, FRAMES[preset], BINS[preset])
    if preset != "yourmt3":
        for i, p in enumerate(valid):
            assert np.all(out[i, p:] == 0.0)
            assert np.all(np.any(out[i, :p] != 0.0, axis=1))


def test_specific_counts_from_the_issue():
    # spot values derived by hand from the spec rules
    assert _core.feature_layout(127, "mr_mt3")["n_segments"] == 0
    assert _core.feature_layout(127, "mt3_pytorch")["valid_frames"] == [1]
    assert _core.feature_layout(128, "mt3_pytorch")["valid_frames"] == [2]
    assert _core.feature_layout(32768, "mr_mt3")["valid_frames"] == [256]
    assert _core.feature_layout(32768, "mt3_pytorch")["valid_frames"] == [256, 1]
    assert _core.feature_layout(32767, "mt3_pytorch")["valid_frames"] == [256]
    assert _core.feature_layout(32768, "yourmt3")["n_segments"] == 2
    assert _core.feature_layout(32767, "yourmt3")["n_segments"] == 1


def test_worked_example_16s_at_16k():
    # mt3-family §2.5
    n = 256000
    mr = _core.feature_layout(n, "mr_mt3")
    pt = _core.feature_layout(n, "mt3_pytorch")
    assert mr["n_segments"] == 8 and mr["valid_frames"] == [256] * 7 + [208]
    assert pt["n_segments"] == 8 and pt["valid_frames"] == [256] * 7 + [209]
    assert mr["segment_starts"] == [0.0, 2.048, 4.096, 6.144, 8.192, 10.24, 12.288, 14.336]
    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal(n)).astype(np.float32)
    a = mt3_infer.compute_features(x, 16000, "mr_mt3", num_threads=2)
    assert a.shape == (8, 256, 512)
    assert np.all(a[7, 208:] == 0) and np.all(a[7, 207] != 0)
    b = mt3_infer.compute_features(x, 16000, "mt3_pytorch", num_threads=2)
    assert b.shape == (8, 257, 512)
    assert np.all(b[:, 256] == 0) and np.all(b[7, 209:] == 0) and np.all(b[7, 208] != 0)


def test_worked_example_10_5s_at_44k1():
    # mt3-family §2.5, second example: 463050 samples at 44.1 kHz -> 168000 at 16 kHz
    rng = np.random.default_rng(7)
    x = (0.1 * rng.standard_normal(463050)).astype(np.float32)
    pt = mt3_infer.compute_features(x, 44100, "mt3_pytorch")  # soxr_hq, as librosa
    assert pt.shape == (6, 257, 512)
    assert np.all(pt[5, 33:] == 0) and np.all(pt[5, 32] != 0)
    mr = mt3_infer.compute_features(x, 44100, "mr_mt3")  # torchaudio sinc, as the CLI
    assert mr.shape == (6, 256, 512)
    assert np.all(mr[5, 32:] == 0) and np.all(mr[5, 31] != 0)
    assert mt3_infer.compute_features(x, 44100, "yourmt3").shape == (6, 110, 1024)


def test_worked_example_yourmt3_16s_44k1_stereo():
    # yourmt3 §3.1: 705600 x 2 at 44.1 kHz -> 256000 samples -> 8 segments
    rng = np.random.default_rng(8)
    x = (0.1 * rng.standard_normal((705600, 2))).astype(np.float32)
    out = mt3_infer.compute_features(x, 44100, "yourmt3", num_threads=2)
    assert out.shape == (8, 110, 1024)
    lay = _core.feature_layout(256000, "yourmt3")
    np.testing.assert_allclose(lay["segment_starts"][1:4], [2.0479375, 4.095875, 6.1438125])


# ----------------------------------------------------------------------------
# threads, chunks, input forms
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_thread_count_and_chunks_do_not_change_results(preset):
    x = SIGNALS["random"]
    one = _core.compute_features(x, 16000, preset, num_threads=1)
    for nt in (2, 3, 0):
        assert np.array_equal(_core.compute_features(x, 16000, preset, num_threads=nt), one)
    s = one.shape[0]
    parts = [_core.compute_features(x, 16000, preset, segment_range=(i, i + 1)) for i in range(s)]
    assert np.array_equal(np.concatenate(parts), one)
    assert _core.compute_features(x, 16000, preset, segment_range=(1, 1)).shape == (0,) + one.shape[1:]
    with pytest.raises(ValueError, match="beyond"):
        _core.compute_features(x, 16000, preset, segment_range=(0, s + 1))


def test_input_forms_agree():
    rng = np.random.default_rng(3)
    x64 = 0.2 * rng.standard_normal(20000)
    x32 = x64.astype(np.float32)
    base = mt3_infer.compute_features(x32, 16000, "mr_mt3")
    # float64 input is rounded to float32 once: same features
    assert np.array_equal(mt3_infer.compute_features(x64, 16000, "mr_mt3"), base)
    # non-contiguous, byte-swapped, NumPy integer sr
    strided = np.empty(40000, np.float32)
    strided[::2] = x32
    assert np.array_equal(mt3_infer.compute_features(strided[::2], 16000, "mr_mt3"), base)
    assert np.array_equal(mt3_infer.compute_features(x32.astype(">f4"), np.int64(16000), "mr_mt3"), base)
    # stereo (samples, channels): mean over channels
    st = np.stack([x32, x32], axis=1)
    assert np.array_equal(mt3_infer.compute_features(st, 16000, "mr_mt3"), base)
    # int16 scaled by 1/32768
    xi = (rng.integers(-32768, 32767, 20000)).astype(np.int16)
    a = mt3_infer.compute_features(xi, 16000, "mt3_pytorch")
    b = mt3_infer.compute_features((xi / 32768.0).astype(np.float32), 16000, "mt3_pytorch")
    assert np.array_equal(a, b)


# ----------------------------------------------------------------------------
# invalid input
# ----------------------------------------------------------------------------


def _x():
    return np.zeros(1000, np.float32)


@pytest.mark.parametrize("audio,pattern", [
    ([0.0] * 100, r"numpy\.ndarray.*list"),
    ("abc", r"numpy\.ndarray.*str"),
    (np.zeros(10, np.int8), r"unsupported audio dtype int8.*float32"),
    (np.zeros(10, np.float16), r"unsupported audio dtype float16"),
    (np.zeros(10, np.complex64), r"unsupported audio dtype complex64"),
    (np.zeros(10, np.uint16), r"unsupported audio dtype uint16"),
    (np.zeros(10, bool), r"unsupported audio dtype bool"),
    (np.array(0.5, np.float32), r"1-D.*2-D.*0-D"),
    (np.zeros((10, 2, 2), np.float32), r"got a 3-D array of shape \(10, 2, 2\)"),
    (np.zeros(0, np.float32), r"empty.*\(0,\)"),
    (np.zeros((0, 2), np.float32), r"empty.*\(0, 2\)"),
    (np.zeros((10, 0), np.float64), r"empty.*\(10, 0\)"),
])
def test_invalid_audio(audio, pattern):
    with pytest.raises(AudioError, match=pattern):
        mt3_infer.compute_features(audio, 16000)
    with pytest.raises(ValueError, match=pattern):  # AudioError is a ValueError
        _core.resample(audio, 44100)


def test_nan_and_inf_are_located():
    x = np.zeros(1000, np.float32)
    x[123] = np.nan
    with pytest.raises(AudioError, match=r"NaN at sample 123\b"):
        mt3_infer.compute_features(x, 16000)
    y = np.zeros((500, 2), np.float64)
    y[45, 1] = np.inf
    with pytest.raises(AudioError, match=r"\+Inf at sample 45, channel 1"):
        mt3_infer.compute_features(y, 44100, "yourmt3")
    y[45, 1] = 0
    y[7, 0] = -np.inf
    with pytest.raises(AudioError, match=r"-Inf at sample 7, channel 0"):
        _core.resample(y, 22050, "sinc")


@pytest.mark.parametrize("sr,pattern", [
    (16000.0, r"sr must be a positive int.*float"),
    ("16000", r"sr must be a positive int.*str"),
    (None, r"sr must be a positive int.*NoneType"),
    (True, r"sr must be a positive int.*bool"),
    (0, r"positive integer.*got 0"),
    (-44100, r"positive integer.*got -44100"),
    (10_000_000, r"10000000 Hz is implausibly large"),
    (10 ** 30, r"implausibly large"),
])
def test_invalid_sample_rate(sr, pattern):
    with pytest.raises(AudioError, match=pattern):
        mt3_infer.compute_features(_x(), sr)
    with pytest.raises(AudioError, match=pattern):
        _core.resample(_x(), sr)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ValueError) as ei:
        mt3_infer.compute_features(_x(), 16000, "mt3")
    msg = str(ei.value)
    assert "'mt3'" in msg and all(p in msg for p in PRESETS)
    with pytest.raises(ValueError, match="preset must be a str"):
        mt3_infer.compute_features(_x(), 16000, 3)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="num_threads"):
        mt3_infer.compute_features(_x(), 16000, num_threads=-1)
    with pytest.raises(ValueError, match="unknown resampler 'fft'"):
        mt3_infer.compute_features(_x(), 44100, resampler="fft")
    with pytest.raises(ValueError, match="stage"):
        _core.compute_features(_x(), 16000, stage="mel")


# ----------------------------------------------------------------------------
# concurrency: first use of every preset from many threads at once
# ----------------------------------------------------------------------------

_CONCURRENT = r"""
import threading, numpy as np, mt3_infer
rng = np.random.default_rng(0)
x = (0.2 * rng.standard_normal(40000)).astype(np.float32)
presets = ["mr_mt3", "mt3_pytorch", "mt3_reference", "yourmt3"] * 3
res = [None] * len(presets)
barrier = threading.Barrier(len(presets))
def work(i):
    barrier.wait()  # all threads hit the one-time table init together
    res[i] = mt3_infer.compute_features(x, 44100, presets[i], num_threads=2)
ts = [threading.Thread(target=work, args=(i,)) for i in range(len(presets))]
[t.start() for t in ts]; [t.join() for t in ts]
for i, p in enumerate(presets):
    assert np.array_equal(res[i], mt3_infer.compute_features(x, 44100, p)), p
print("ok")
"""


def test_concurrent_first_use_gives_sequential_results():
    import subprocess
    import sys

    # -P: import mt3_infer as the parent does (under `make asan`: the sanitized build)
    flags = ["-P"] if sys.version_info >= (3, 11) else []
    out = subprocess.run([sys.executable, *flags, "-c", _CONCURRENT], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"

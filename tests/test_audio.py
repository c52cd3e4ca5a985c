"""Audio stage: mono mix, integer scaling, the two resamplers.

References: mt3-family.md §1.2 (librosa soxr_hq, output length
ceil(N * 16000 / sr)) and yourmt3.md §2.2 (torchaudio windowed-sinc resampler,
transcribed below in NumPy float64).
"""
import math

import numpy as np
import pytest

from mt3_infer import AudioError, _core
from mt3_infer.features import resample
from ref_audio import SOXR_TWO_EVALS, U, sinc_bounds, sinc_reference


def analytic_sine(n, freq=1000.0, amp=0.5, sr=16000):
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)


def snr_db(y, ref):
    return 10 * np.log10(np.sum(ref ** 2) / np.sum((y - ref) ** 2))


def ceil_div(a, b):
    return -(-a // b)


# ----------------------------------------------------------------------------
# soxr_hq
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("sr", [44100, 48000, 22050, 8000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_soxr_sine_snr_and_length(sr, dtype):
    n = int(1.5 * sr) + 7  # not a whole number of output samples
    x = (0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(n) / sr)).astype(dtype)
    y = resample(x, sr, "soxr_hq")
    assert y.dtype == np.float32
    assert len(y) == ceil_div(n * 16000, sr)
    ref = analytic_sine(len(y))
    core = slice(1600, len(y) - 1600)  # 0.1 s away from each edge
    assert snr_db(y[core].astype(np.float64), ref[core]) >= 80.0


@pytest.mark.parametrize("sr", [44100, 48000, 22050, 8000, 11025, 96000, 32000, 12345])
@pytest.mark.parametrize("n", [1, 2, 3, 160, 441, 4410, 12347])
def test_output_lengths(sr, n):
    x = np.full(n, 0.25, np.float32)
    assert len(resample(x, sr, "soxr_hq")) == math.ceil(n * (16000 / sr))
    if sr != 12345:
        assert len(resample(x, sr, "sinc")) == ceil_div(n * 16000, sr)


def test_16k_is_passed_through():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000)
    for m in ("soxr_hq", "sinc"):
        assert np.array_equal(resample(x, 16000, m), x.astype(np.float32))


# ----------------------------------------------------------------------------
# torchaudio sinc, NumPy float64 transcription of yourmt3.md §2.2
# ----------------------------------------------------------------------------


def test_sinc_reference_matches_spec_examples():
    # (a, b, W, taps) of the spec's examples, derived by the reference's own arithmetic
    for sr, a, b, W in ((44100, 441, 160, 17), (48000, 3, 1, 19), (22050, 441, 320, 9), (8000, 1, 2, 7)):
        g = math.gcd(sr, 16000)
        assert (sr // g, 16000 // g) == (a, b)
        assert math.ceil(6 * a / (min(a, b) * 0.99)) == W


@pytest.mark.parametrize("sr", [44100, 48000, 22050, 8000, 11025, 24000, 96000])
def test_sinc_matches_reference(sr):
    rng = np.random.default_rng(sr)
    n = 3001
    t = np.arange(n) / sr
    x = 0.3 * rng.standard_normal(n) + 0.4 * np.sin(2 * np.pi * 700 * t)
    x = x.astype(np.float32)
    y = resample(x, sr, "sinc")
    ref = sinc_reference(x, sr)
    assert y.shape == ref.shape
    ref32 = sinc_reference(x, sr, kernel_dtype=np.float32)
    b32, b64 = sinc_bounds(x, sr)
    # against the same formula with the kernel rounded as float32 arithmetic does
    assert np.all(np.abs(y - ref32) <= b32)
    # against the exact formula: plus torchaudio's float32 kernel's own error
    assert np.all(np.abs(y - ref) <= b64)


@pytest.mark.parametrize("sr", [44100, 48000, 22050, 8000])
def test_sinc_sine_quality(sr):
    n = sr  # 1 s
    x = (0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(n) / sr)).astype(np.float32)
    y = resample(x, sr, "sinc")
    assert len(y) == 16000
    ref = analytic_sine(16000)
    core = slice(1600, 16000 - 1600)
    assert snr_db(y[core].astype(np.float64), ref[core]) >= 40.0


def test_sinc_long_input_is_chunk_invariant():
    # Longer than one internal chunk (65536 input samples): the output equals
    # the reference everywhere, including across chunk boundaries.
    rng = np.random.default_rng(11)
    x = (0.2 * rng.standard_normal(200_003)).astype(np.float32)
    y = resample(x, 44100, "sinc")
    ref = sinc_reference(x, 44100, kernel_dtype=np.float32)
    assert np.all(np.abs(y - ref) <= sinc_bounds(x, 44100)[0])


def test_sinc_refuses_rates_with_huge_kernels():
    with pytest.raises(AudioError, match=r"44101 Hz.*soxr_hq"):
        resample(np.zeros(100, np.float32), 44101, "sinc")
    assert len(resample(np.zeros(100, np.float32), 44101, "soxr_hq")) == math.ceil(100 * 16000 / 44101)


# ----------------------------------------------------------------------------
# mono mix and integer scaling
# ----------------------------------------------------------------------------


def test_int16_and_int32_scaling():
    i16 = np.array([-32768, -1, 0, 1, 16384, 32767], np.int16)
    np.testing.assert_array_equal(resample(i16, 16000), (i16 / 32768.0).astype(np.float32))
    assert resample(i16, 16000).max() < 1.0
    i32 = np.array([-2 ** 31, -1, 0, 1, 2 ** 30, 2 ** 31 - 1], np.int32)
    np.testing.assert_array_equal(resample(i32, 16000), (i32 / 2.0 ** 31).astype(np.float32))


def test_mono_mix_is_mean_over_channels():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1000, 3))
    np.testing.assert_array_equal(resample(x, 16000), x.mean(axis=1).astype(np.float32))
    # int16 stereo: scaled then averaged
    s = rng.integers(-32768, 32767, (500, 2)).astype(np.int16)
    want = (s / 32768.0).mean(axis=1)  # exact in double; C rounds it to float32 once
    assert np.all(np.abs(resample(s, 16000) - want) <= U * np.abs(want))
    # a channels-first array is refused (it used to be mixed over the wrong axis)
    with pytest.raises(AudioError, match=r"channels-first.*audio\.T"):
        resample(np.zeros((2, 1000), np.float32), 16000)


def test_strided_and_fortran_views():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4000, 2)).astype(np.float32)
    f = np.asfortranarray(x)
    expect = resample(np.ascontiguousarray(x), 44100)
    np.testing.assert_array_equal(resample(f, 44100), expect)
    np.testing.assert_array_equal(resample(x[::-1][::-1], 44100), expect)
    big = np.zeros((8000, 4), np.float32)
    big[::2, 1:3] = x
    np.testing.assert_array_equal(resample(big[::2, 1:3], 44100), expect)


def test_stereo_resampled_equals_mono_resampled():
    rng = np.random.default_rng(9)
    a = rng.standard_normal(5000)
    st = np.stack([a + 0.25, a - 0.25], axis=1)
    # the double mean of (a + 1/4, a - 1/4) is a within 2 double ulps, so the float32
    # input differs by <= 1 float ulp (2u|a|); through a filter of row sum <= L1 = 8
    # that is <= 16u max|a|, plus the two evaluations' own rounding
    bound = {"soxr_hq": (16 * U + SOXR_TWO_EVALS) * np.abs(a).max()}
    b32, _ = sinc_bounds(np.abs(a), 48000)  # per output, from |a|
    bound["sinc"] = 2 * b32 + 16 * U * np.abs(a).max()
    for m in ("soxr_hq", "sinc"):
        assert np.all(np.abs(resample(st, 48000, m) - resample(a, 48000, m)) <= bound[m])


# ----------------------------------------------------------------------------
# invalid input
# ----------------------------------------------------------------------------


def test_resample_errors():
    x = np.zeros(100, np.float32)
    with pytest.raises(ValueError, match="unknown resampler 'linear'"):
        _core.resample(x, 44100, "linear")
    with pytest.raises(AudioError, match="implausibly large"):
        _core.resample(x, 2_000_000)
    with pytest.raises(AudioError, match="positive int"):
        _core.resample(x, 44100.0)
    with pytest.raises(AudioError, match="empty"):
        _core.resample(np.zeros((0, 1)), 44100)
    with pytest.raises(AudioError, match=r"NaN at sample 3, channel 1"):
        _core.resample(np.array([[0, 0], [0, 0], [0, 0], [0, np.nan]]), 8000)


BAD_AUDIO = [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros((0, 2), np.float32), "empty"),
    (np.zeros(100, np.int8), "unsupported audio dtype int8"),
    (np.zeros(100, np.uint16), "unsupported audio dtype uint16"),
    (np.zeros(100, np.complex64), "unsupported audio dtype complex64"),
    (np.zeros((10, 2, 2), np.float32), "1-D .* 2-D .* 3-D"),
    (np.zeros((), np.float32), "1-D .* 2-D .* 0-D"),
    (np.array([0.0, np.inf]), r"\+Inf at sample 1"),
    (np.zeros((2, 48000), np.float32), r"shape \(2, 48000\) looks channels-first.*audio\.T"),
    (np.zeros((1000, 65), np.float32), r"65 channels \(limit 64\).*audio\.T"),
]


@pytest.mark.parametrize("audio,match", BAD_AUDIO)
@pytest.mark.parametrize("call", ["resample", "compute_features", "compute_features_44k"])
def test_bad_audio_is_audioerror_on_every_c_path(audio, match, call):
    from mt3_infer import compute_features

    with pytest.raises(AudioError, match=match) as ei:
        if call == "resample":
            _core.resample(audio, 44100)
        elif call == "compute_features":
            compute_features(audio, 16000)
        else:
            compute_features(audio, 44100, preset="yourmt3")
    assert type(ei.value) is AudioError


@pytest.mark.parametrize("sr,match", [
    (0, "positive"), (-8000, "positive"), (1, "implausibly small.*1000\\.\\.1000000"),
    (999, "implausibly small"), (2 ** 31, "implausibly large"), (2 ** 70, "implausibly large"),
    (1_000_001, "implausibly large"), (True, "positive int"), (16000.0, "positive int"),
])
def test_sample_rate_range_is_enforced(sr, match):
    x = np.zeros(1000, np.float32)
    for fn in (lambda: _core.resample(x, sr), lambda: _core.compute_features(x, sr),
               lambda: _core.check_sample_rate(sr)):
        with pytest.raises(AudioError, match=match):
            fn()
    assert (_core.AUDIO_MIN_SR, _core.AUDIO_MAX_SR) == (1000, 1_000_000)


def test_sample_rate_range_ends_are_accepted():
    x = np.zeros(100, np.float32)
    assert len(_core.resample(x, 1000)) == 1600
    assert len(_core.resample(x, 1_000_000)) == 2
    assert _core.check_sample_rate(np.int64(44100)) == 44100


def test_resampled_length_bound_is_named():
    # 24 h of 16 kHz audio is the most the pipeline resamples to; a stride-0
    # view gives a long input without the memory
    long = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (16000 * 3600 * 24 // 2 + 1,), (0,))
    with pytest.raises(AudioError, match=r"audio too long.*limit 1382400000 = 24 hours"):
        _core.resample(long, 8000)
    assert _core.AUDIO_MAX_SAMPLES_16K == 1382400000


def test_channels_first_rule_edges():
    # square and samples-first arrays are fine; up to 64 channels allowed
    assert resample(np.zeros((2, 2), np.float32), 16000).shape == (2,)
    assert resample(np.zeros((100, 64), np.float32), 16000).shape == (100,)
    with pytest.raises(AudioError, match="channels-first"):
        resample(np.zeros((2, 3), np.float32), 16000)


# ----------------------------------------------------------------------------
# parity with what the anchor runs: librosa.resample(res_type="soxr_hq") =
# python-soxr resample(quality="soxr_hq") + fix_length (trim / zero-pad)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("sr", [44100, 48000, 22050, 8000, 11025, 96000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_soxr_hq_matches_python_soxr(sr, dtype):
    soxr = pytest.importorskip("soxr")
    rng = np.random.default_rng(sr)
    n = int(sr * 2.3) + 5
    x = (0.3 * rng.standard_normal(n)).astype(dtype)
    m = math.ceil(n * (16000 / sr))
    r = soxr.resample(x, sr, 16000, quality="soxr_hq")
    expect = np.zeros(m)
    expect[: min(m, len(r))] = r[:m]
    y = resample(x, sr, "soxr_hq")
    assert len(y) == m
    # python-soxr bundles its own libsoxr build: SIMD-level differences only
    # (any other quality or phase setting differs by > 1e-3)
    assert np.abs(y - expect).max() <= SOXR_TWO_EVALS * np.abs(x).max()

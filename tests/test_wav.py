"""WAV reader (csrc/core/wav.c via mt3_infer._core.read_wav / decode_wav) and
mt3_infer.audio.load_audio.

References are independent of the C code: files are written by Python's
``wave`` module or assembled byte by byte here with ``struct``, and expected
samples are computed with NumPy in float64 from the integers written.
"""
import struct
import sys
import wave

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mt3_infer import AudioError, _core, load_audio
from mt3_infer.audio import read_audio, resample_audio

RNG = np.random.default_rng(1234)

PCM_GUID_TAIL = bytes([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71])


# ---------------------------------------------------------------------------
# Byte builders (written from the RIFF/WAVE format description)
# ---------------------------------------------------------------------------
def chunk(cid: bytes, body: bytes, pad: bool = True) -> bytes:
    out = cid + struct.pack("<I", len(body)) + body
    if pad and len(body) % 2:
        out += b"\x00"
    return out


def fmt_body(tag, channels, rate, bits, block_align=None, ext=None):
    container = (bits + 7) // 8
    ba = channels * container if block_align is None else block_align
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * ba, ba, bits)
    if ext is not None:
        valid, mask, subtag = ext
        body += struct.pack("<HHI", 22, valid, mask) + struct.pack("<H", subtag) + PCM_GUID_TAIL
    return body


def riff(*chunks: bytes, form=b"WAVE", magic=b"RIFF") -> bytes:
    payload = form + b"".join(chunks)
    return magic + struct.pack("<I", len(payload)) + payload


def int_samples(bits, frames, channels):
    if bits == 8:
        return RNG.integers(0, 256, size=(frames, channels), dtype=np.int64)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1)
    x = RNG.integers(lo, hi, size=(frames, channels), dtype=np.int64)
    x[0, 0] = lo  # full-scale extremes
    x[-1, -1] = hi - 1
    return x


def pack_ints(x, bits, container=None):
    container = container or (bits + 7) // 8
    flat = x.reshape(-1)
    if bits == 8:
        return flat.astype(np.uint8).tobytes()
    shift = container * 8 - bits
    vals = (flat << shift) & ((1 << (container * 8)) - 1)
    out = bytearray()
    for v in vals.tolist():
        out += int(v).to_bytes(container, "little")
    return bytes(out)


def expected_from_ints(x, bits, container=None):
    container = container or (bits + 7) // 8
    if bits == 8:
        return ((x.astype(np.float64) - 128.0) / 128.0).astype(np.float32)
    # left-justified in the container, scaled by 2^(container bits - 1)
    return (x.astype(np.float64) * 2.0 ** (container * 8 - bits) / 2.0 ** (container * 8 - 1)).astype(np.float32)


def write_with_wave(path, x, bits, rate):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(bits // 8)
        w.setframerate(rate)
        w.writeframes(pack_ints(x, bits))


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 16, 24, 32])
@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_pcm_roundtrip_against_wave_module(tmp_path, bits, channels):
    x = int_samples(bits, 1001, channels)
    p = tmp_path / f"pcm{bits}_{channels}.wav"
    write_with_wave(p, x, bits, 22050)
    data, sr = _core.read_wav(str(p))
    assert sr == 22050
    assert data.dtype == np.float32 and data.shape == (1001, channels)
    np.testing.assert_array_equal(data, expected_from_ints(x, bits))
    # the wave module reads back the same frames we compare against
    with wave.open(str(p), "rb") as w:
        assert w.getnframes() == 1001 and w.getnchannels() == channels
    info = _core.wav_info(str(p))
    assert info == {"sample_rate": 22050, "channels": channels, "frames": 1001, "bits": bits,
                    "encoding": "int", "format_tag": 1}


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
@pytest.mark.parametrize("channels", [1, 2, 3, 6, 11])
def test_mono_while_reading(tmp_path, bits, channels):
    """read_wav(mono=True) mixes block by block (64 KiB of file at a time, so
    90 001 frames span many blocks): the mean of the decoded float32
    channels as numpy computes it with dtype=float64 (the sum of <= 11
    float32 values is exact in float64, then one division and one rounding
    to float32), so equality is exact."""
    x = int_samples(bits, 90001, channels)
    p = tmp_path / "m.wav"
    write_with_wave(p, x, bits, 44100)
    mono, sr = _core.read_wav(str(p), mono=True)
    assert sr == 44100 and mono.shape == (90001,) and mono.dtype == np.float32
    ref = expected_from_ints(x, bits).astype(np.float64).mean(axis=1)
    np.testing.assert_array_equal(mono, ref.astype(np.float32))
    audio, rate = load_audio(p, sr=None)
    np.testing.assert_array_equal(audio, mono)
    assert rate == 44100


@pytest.mark.parametrize("bits,dtype", [(32, "<f4"), (64, "<f8")])
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_float_roundtrip(tmp_path, bits, dtype, channels):
    x = RNG.standard_normal((777, channels)) * 0.5
    x[0, 0] = 1.0
    x[1, 0] = -1.0
    raw = x.astype(dtype).tobytes()
    body = fmt_body(3, channels, 16000, bits) + struct.pack("<H", 0)  # 18-byte fmt with cbSize 0
    data = riff(chunk(b"fmt ", body), chunk(b"fact", struct.pack("<I", 777)), chunk(b"data", raw))
    p = tmp_path / "f.wav"
    p.write_bytes(data)
    got, sr = _core.read_wav(str(p))
    assert sr == 16000 and got.shape == (777, channels)
    np.testing.assert_array_equal(got, x.astype(dtype).astype(np.float32))
    got2, sr2 = _core.decode_wav(data)
    np.testing.assert_array_equal(got2, got)


@pytest.mark.parametrize("container_bits,valid_bits", [(16, 16), (24, 24), (24, 20), (32, 24), (32, 32), (8, 8)])
def test_extensible_pcm(tmp_path, container_bits, valid_bits):
    channels = 4
    x = int_samples(valid_bits, 500, channels) if valid_bits != 8 else int_samples(8, 500, channels)
    raw = pack_ints(x, valid_bits, container_bits // 8) if valid_bits != 8 else pack_ints(x, 8)
    fmt = fmt_body(0xFFFE, channels, 48000, container_bits, ext=(valid_bits, 0x33, 1))
    data = riff(chunk(b"fmt ", fmt), chunk(b"data", raw))
    got, sr = _core.decode_wav(data)
    assert sr == 48000 and got.shape == (500, channels)
    exp = expected_from_ints(x, valid_bits, container_bits // 8) if valid_bits != 8 else expected_from_ints(x, 8)
    np.testing.assert_array_equal(got, exp)


def test_extensible_float_many_channels():
    channels = 9
    x = RNG.uniform(-1, 1, (300, channels)).astype("<f4")
    fmt = fmt_body(0xFFFE, channels, 44100, 32, ext=(32, 0, 3))
    got, sr = _core.decode_wav(riff(chunk(b"fmt ", fmt), chunk(b"data", x.tobytes())))
    assert sr == 44100
    np.testing.assert_array_equal(got, x)


def test_rf64():
    x = RNG.integers(-32768, 32768, (100, 2)).astype("<i2")
    raw = x.tobytes()
    ds64 = struct.pack("<QQQI", 0, len(raw), 100, 0)
    body = b"WAVE" + chunk(b"ds64", ds64) + chunk(b"fmt ", fmt_body(1, 2, 8000, 16)) \
        + b"data" + struct.pack("<I", 0xFFFFFFFF) + raw
    data = b"RF64" + struct.pack("<I", 0xFFFFFFFF) + body
    got, sr = _core.decode_wav(data)
    assert sr == 8000
    np.testing.assert_array_equal(got, x.astype(np.float64) / 32768.0)


# ---------------------------------------------------------------------------
# Odd but valid layouts
# ---------------------------------------------------------------------------
def _pcm16(frames=64, channels=2):
    x = RNG.integers(-32768, 32768, (frames, channels)).astype("<i2")
    return x, (x.astype(np.float64) / 32768.0).astype(np.float32)


def test_unknown_and_odd_chunks_with_pad():
    x, exp = _pcm16()
    data = riff(chunk(b"LIST", b"INFOabc"), chunk(b"fmt ", fmt_body(1, 2, 16000, 16)),
                chunk(b"junk", b"\x01"), chunk(b"data", x.tobytes()))
    got, _ = _core.decode_wav(data)
    np.testing.assert_array_equal(got, exp)


def test_odd_chunk_without_pad_byte():
    x, exp = _pcm16()
    data = riff(chunk(b"bext", b"xyz", pad=False), chunk(b"fmt ", fmt_body(1, 2, 16000, 16)),
                chunk(b"data", x.tobytes()))
    got, _ = _core.decode_wav(data)
    np.testing.assert_array_equal(got, exp)


def test_fmt_after_data_and_trailing_garbage():
    x, exp = _pcm16()
    data = riff(chunk(b"data", x.tobytes()), chunk(b"fmt ", fmt_body(1, 2, 16000, 16))) + b"\xff\x00garbage"
    got, _ = _core.decode_wav(data)
    np.testing.assert_array_equal(got, exp)


def test_partial_last_frame_dropped():
    x, exp = _pcm16(frames=10)
    data = riff(chunk(b"fmt ", fmt_body(1, 2, 16000, 16)), chunk(b"data", x.tobytes() + b"\x01\x02\x03"))
    got, _ = _core.decode_wav(data)
    np.testing.assert_array_equal(got, exp)


def test_streaming_placeholder_length():
    x, exp = _pcm16(frames=33)
    data = riff(chunk(b"fmt ", fmt_body(1, 2, 16000, 16))) + b"data" + struct.pack("<I", 0xFFFFFFFF) + x.tobytes()
    got, _ = _core.decode_wav(data)
    np.testing.assert_array_equal(got, exp)


def test_empty_data_chunk(tmp_path):
    data = riff(chunk(b"fmt ", fmt_body(1, 1, 16000, 16)), chunk(b"data", b""))
    got, sr = _core.decode_wav(data)
    assert got.shape == (0, 1) and sr == 16000
    p = tmp_path / "empty.wav"
    p.write_bytes(data)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(p)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
GOOD = riff(chunk(b"fmt ", fmt_body(1, 1, 16000, 16)), chunk(b"data", b"\x00\x01" * 50))


@pytest.mark.parametrize("data,match", [
    (b"", "only 0 byte"),
    (b"RIFF\x00", "only 5 byte"),
    (b"ID3\x03\x00\x00\x00\x00\x00\x00\x00\x00", "expected 'RIFF'"),
    (b"RIFX\x00\x00\x00\x00WAVE", "big-endian"),
    (b"RIFF\x04\x00\x00\x00AVI ", "expected 'WAVE'"),
    (riff(chunk(b"data", b"\x00" * 10)), "no 'fmt ' chunk"),
    (riff(chunk(b"fmt ", fmt_body(1, 1, 16000, 16))), "no 'data' chunk"),
    (riff(chunk(b"fmt ", b"\x01\x00\x01\x00")), "at least 16"),
    (GOOD[:30], "truncated"),
    (riff(chunk(b"fmt ", fmt_body(1, 1, 16000, 16))) + b"data" + struct.pack("<I", 1000) + b"\x00" * 10,
     "truncated WAV: the 'data' chunk declares 1000"),
    (riff(chunk(b"fmt ", fmt_body(1, 0, 16000, 16)), chunk(b"data", b"")), "0 channels"),
    (riff(chunk(b"fmt ", fmt_body(1, 1, 0, 16)), chunk(b"data", b"")), "sample rate of 0"),
    (riff(chunk(b"fmt ", fmt_body(1, 2, 16000, 16, block_align=3)), chunk(b"data", b"")), "block align"),
    (riff(chunk(b"fmt ", fmt_body(6, 1, 8000, 8)), chunk(b"data", b"\x00")), "A-law"),
    (riff(chunk(b"fmt ", fmt_body(3, 1, 8000, 16)), chunk(b"data", b"\x00\x00")), "16-bit IEEE float"),
    (riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 48)), chunk(b"data", b"")), "48-bit integer"),
    (riff(chunk(b"fmt ", fmt_body(0xFFFE, 1, 8000, 16)[:16] + b"\x16\x00" + b"\x00" * 22),
          chunk(b"data", b"")), "sub-format GUID"),
    (riff(chunk(b"fmt ", fmt_body(1, 1, 16000, 16))) + b"\x00\xff\x13\x07" + b"\x00" * 20, "invalid chunk id"),
])
def test_bad_headers_raise_audioerror(tmp_path, data, match):
    with pytest.raises(AudioError, match=match):
        _core.decode_wav(data)
    p = tmp_path / "bad.wav"
    p.write_bytes(data)
    with pytest.raises(AudioError, match=match):
        _core.read_wav(str(p))


def test_audioerror_is_valueerror():
    with pytest.raises(ValueError):
        _core.decode_wav(b"nonsense")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(AudioError, match="cannot open WAV file"):
        _core.read_wav(str(tmp_path / "nope.wav"))
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)


def test_every_truncation_of_a_valid_file():
    x = RNG.integers(-32768, 32768, (20, 3)).astype("<i2")
    data = riff(chunk(b"LIST", b"INFOab"), chunk(b"fmt ", fmt_body(1, 3, 16000, 16)), chunk(b"data", x.tobytes()))
    full, _ = _core.decode_wav(data)
    for n in range(len(data)):
        try:
            got, _ = _core.decode_wav(data[:n])
        except AudioError:
            continue
        # anything accepted must be a prefix of the real samples
        assert got.shape[1] == 3
        np.testing.assert_array_equal(got, full[: got.shape[0]])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_never_crash(data):
    try:
        arr, sr = _core.decode_wav(data)
    except AudioError:
        return
    assert arr.dtype == np.float32 and arr.ndim == 2 and arr.shape[1] >= 1 and sr > 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), max_size=8),
       st.integers(0, len(GOOD)))
def test_fuzz_mutated_header_never_crash(mutations, cut):
    data = bytearray(GOOD[:cut] if cut else GOOD)
    for pos, val in mutations:
        if pos < len(data):
            data[pos] = val
    try:
        arr, sr = _core.decode_wav(bytes(data))
    except AudioError:
        return
    assert arr.ndim == 2 and sr > 0


# ---------------------------------------------------------------------------
# load_audio
# ---------------------------------------------------------------------------
def test_load_audio_mono_mix_and_native_rate(tmp_path):
    x = int_samples(16, 4000, 2)
    p = tmp_path / "s.wav"
    write_with_wave(p, x, 16, 16000)
    audio, sr = load_audio(p)
    assert sr == 16000 and audio.dtype == np.float32 and audio.ndim == 1
    ref = (x.astype(np.float64) / 32768.0).mean(axis=1)
    # the mean is exact in double, rounded to float32 once: <= u |ref|
    assert np.all(np.abs(audio - ref) <= 2.0 ** -24 * np.abs(ref))
    multi, sr2 = load_audio(p, sr=None, mono=False)
    assert multi.shape == (4000, 2) and sr2 == 16000


def test_load_audio_resamples(tmp_path):
    t = np.arange(44100) / 44100.0
    x = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int64)[:, None]
    p = tmp_path / "a.wav"
    write_with_wave(p, x, 16, 44100)
    audio, sr = load_audio(p, sr=16000)
    assert sr == 16000
    assert abs(audio.shape[0] - 16000) <= 1
    # a 440 Hz tone stays a 440 Hz tone of the same amplitude
    spec = np.abs(np.fft.rfft(audio[2000:14000] * np.hanning(12000)))
    peak_hz = np.argmax(spec) * 16000 / 12000
    assert abs(peak_hz - 440) < 3
    assert 0.45 < np.max(np.abs(audio[1000:-1000])) < 0.55


def test_resample_identity_and_bad_rate():
    x = RNG.standard_normal(100).astype(np.float32)
    np.testing.assert_array_equal(resample_audio(x, 16000, 16000), x)
    with pytest.raises(AudioError):
        resample_audio(x, 0, 16000)


def test_non_wav_without_soundfile_names_the_package(tmp_path, monkeypatch):
    p = tmp_path / "song.flac"
    p.write_bytes(b"fLaC\x00\x00\x00\x22" + b"\x00" * 40)
    monkeypatch.setitem(sys.modules, "soundfile", None)  # make the import fail
    with pytest.raises(AudioError, match="soundfile"):
        read_audio(p)


def test_unsupported_wav_encoding_without_soundfile(tmp_path, monkeypatch):
    p = tmp_path / "alaw.wav"
    p.write_bytes(riff(chunk(b"fmt ", fmt_body(6, 1, 8000, 8)), chunk(b"data", b"\x55" * 10)))
    monkeypatch.setitem(sys.modules, "soundfile", None)
    with pytest.raises(AudioError, match="A-law.*soundfile"):
        load_audio(p)


def test_garbage_wav_file_message(tmp_path):
    p = tmp_path / "x.wav"
    p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt \xff\xff\xff\x7f")
    with pytest.raises(AudioError, match=r"Failed to load audio from .*x\.wav: truncated"):
        load_audio(p)


@pytest.mark.parametrize("content,found", [
    (b"this is not audio, just text\n", r"starts with b'this is not '.*looks like text"),
    (bytes(range(200, 256)) * 4, r"starts with b'\\xc8\\xc9"),
    (b"", r"empty \(0 bytes\)"),
    (b"RIFF\x10\x00\x00\x00AVI LIST", r"starts with b'RIFF\\x10\\x00\\x00\\x00AVI '"),
])
@pytest.mark.parametrize("name", ["song.wav", "SONG.WAVE"])
def test_wav_named_file_that_is_not_wav(tmp_path, monkeypatch, content, found, name):
    p = tmp_path / name
    p.write_bytes(content)
    for have_soundfile in (False, True):
        if not have_soundfile:
            monkeypatch.setitem(sys.modules, "soundfile", None)
        else:
            monkeypatch.delitem(sys.modules, "soundfile", raising=False)
        with pytest.raises(AudioError, match=r"Not a valid WAV file: .*" + found) as ei:
            load_audio(p)
        assert "soundfile" not in str(ei.value) and "natively" not in str(ei.value)


@pytest.mark.parametrize("sr,match", [(0, "positive"), (1, "implausibly small"), (2 ** 31, "implausibly large"),
                                      ("16000", "positive int"), (16000.5, "positive int")])
def test_load_audio_bad_target_rate_is_audioerror(tmp_path, sr, match):
    p = tmp_path / "a.wav"
    p.write_bytes(riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 16)), chunk(b"data", b"\x00\x10" * 800)))
    with pytest.raises(AudioError, match=match):
        load_audio(p, sr=sr)
    assert load_audio(p, sr=16000.0)[1] == 16000


def test_load_audio_file_at_implausible_rate(tmp_path):
    p = tmp_path / "slow.wav"
    p.write_bytes(riff(chunk(b"fmt ", fmt_body(1, 1, 10, 16)), chunk(b"data", b"\x00\x10" * 100)))
    with pytest.raises(AudioError, match=r"10 Hz is implausibly small"):
        load_audio(p)  # 10 s at 10 Hz would become 160000 samples of nothing
    assert load_audio(p, sr=None)[1] == 10  # read as is

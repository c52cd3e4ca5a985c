"""Audio files → NumPy arrays.

WAV (RIFF/RF64: integer PCM 8/16/24/32-bit, IEEE float 32/64-bit, plain or
WAVE_FORMAT_EXTENSIBLE, any channel count) is read by the C core
(``mt3_infer._core.read_wav``) with the GIL released.  Other formats (FLAC,
OGG, MP3, AIFF…) go through the optional ``soundfile`` package.  Resampling
uses the C core's libsoxr resampler when present.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from . import _core
from .exceptions import AudioError

__all__ = ["load_audio", "read_audio", "resample_audio", "AUDIO_EXTENSIONS"]

#: File name extensions the CLI treats as audio when walking folders.
AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                    ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64")

_SOUNDFILE_HINT = (
    "Reading {what} needs the optional 'soundfile' package: pip install soundfile "
    "(or mt3-infer[audio]). WAV files are read natively without it."
)


def _is_wav(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[:4] in (b"RIFF", b"RF64", b"BW64", b"RIFX") and head[8:12] == b"WAVE"


def _not_wav_message(path: Path) -> str:
    """Why a file named .wav/.wave is not WAV: what its first bytes are."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        return f"Cannot read audio file {path}: {exc}"
    if not head:
        found = "the file is empty (0 bytes)"
    else:
        found = f"it starts with {head!r}"
        if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
            found += " (looks like text)"
    return (
        f"Not a valid WAV file: {path}: a WAV file starts with 'RIFF' (or 'RF64'), a size and "
        f"'WAVE', but {found}. The file is damaged or is not audio; re-export or re-download it "
        "as WAV."
    )


def _read_soundfile(path: Path, why: str) -> Tuple[np.ndarray, int]:
    try:
        import soundfile as sf  # optional dependency
    except Exception as exc:
        raise AudioError(_SOUNDFILE_HINT.format(what=why) + f" ({path})") from exc
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"Failed to load audio from {path}: {exc}") from exc
    return np.ascontiguousarray(data, dtype=np.float32), int(rate)


def _native_wav(p: Path, call):
    """``(call(str(p)), None)`` for a native WAV read, or ``(None, exc)`` when
    the file's encoding is one the native reader does not decode (soundfile
    may); any other failure is an AudioError naming the file."""
    try:
        return call(str(p)), None
    except AudioError as exc:
        if "unsupported WAV" not in str(exc):
            raise AudioError(f"Failed to load audio from {p}: {exc}") from exc
        return None, exc


def read_audio(path: Union[str, os.PathLike], mono: bool = False) -> Tuple[np.ndarray, int]:
    """Decode a file as is: ``(float32 array (frames, channels), sample_rate)``;
    ``mono=True``: the channel mean, shape ``(frames,)`` — for WAV mixed while
    reading (in 64 KiB blocks), so a long multichannel file is never held at
    its channel count."""
    p = Path(os.fspath(path))
    if not p.exists():
        raise AudioError(f"Audio file not found: {p}")
    if p.is_dir():
        raise AudioError(f"Audio path is a directory, not a file: {p}")
    if _is_wav(p):
        got, exc = _native_wav(p, lambda s: _core.read_wav(s, mono=mono))
        if exc is None:
            return got
        try:
            import soundfile  # noqa: F401
        except Exception:
            raise AudioError(
                f"Failed to load audio from {p}: {exc}. "
                + _SOUNDFILE_HINT.format(what="this WAV encoding")
            ) from exc
        return _mix(_read_soundfile(p, "this WAV encoding"), mono)
    ext = p.suffix.lower() or "(no extension)"
    if ext in (".wav", ".wave"):
        raise AudioError(_not_wav_message(p))
    return _mix(_read_soundfile(p, f"'{ext}' files"), mono)


def _mix(decoded: Tuple[np.ndarray, int], mono: bool) -> Tuple[np.ndarray, int]:
    """(frames, channels) -> (frames,) channel mean (float64 sum, as the C mixer) when mono."""
    data, rate = decoded
    if not mono:
        return data, rate
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0]), rate
    return data.mean(axis=1, dtype=np.float64).astype(np.float32), rate


def _fft_resample(x: np.ndarray, n_out: int) -> np.ndarray:
    """Band-limited FFT resampling along axis 0 to ``n_out`` samples, float32.

    The ideal (periodic) interpolator with ``scipy.signal.resample``'s
    convention for the unpaired bin: with m = min(n_in, n_out) even and the
    length changing, bin m/2 is doubled when shortening (the +/- m/2 pair
    folds into one bin) and halved when lengthening (one bin splits into a
    pair)."""
    n_in = x.shape[0]
    if n_out == n_in:
        return x.astype(np.float32, copy=False)
    m = min(n_in, n_out)
    spec = np.fft.rfft(x.astype(np.float64), axis=0)[: m // 2 + 1]
    if m % 2 == 0:
        spec[m // 2] *= 2.0 if n_out < n_in else 0.5
    y = np.fft.irfft(spec, n=n_out, axis=0) * (n_out / n_in)
    return y.astype(np.float32)


def resample_audio(audio: np.ndarray, orig_sr: int, target_sr: int, method: Optional[str] = None) -> np.ndarray:
    """Resample ``audio`` (``(n,)`` or ``(n, channels)``) from ``orig_sr`` to ``target_sr``.

    ``method``: ``"sinc"`` — the C core's windowed-sinc resampler
    (torchaudio's ``functional.resample`` defaults, what mt3-infer 0.2.0's
    ``load_audio`` uses), 16 kHz targets only; ``"fft"`` — FFT resampling to
    ``int(n * target / orig)`` samples (``scipy.signal.resample``'s method,
    0.2.0's ``utils.resample_audio``); None (default): sinc for 16 kHz
    targets, else fft.  Returns float32.
    """
    if method not in (None, "sinc", "fft"):
        raise ValueError(f"method must be None, 'sinc' or 'fft', got {method!r}")
    # both rates: AUDIO_MIN_SR..AUDIO_MAX_SR (1 kHz .. 1 MHz), the C core's rule
    orig_sr = _core.check_sample_rate(orig_sr)
    target_sr = _core.check_sample_rate(target_sr)
    x = np.asarray(audio)
    if x.ndim not in (1, 2):
        raise AudioError(f"audio must be 1-D (n,) or 2-D (n, channels), got shape {x.shape}")
    if orig_sr == target_sr:
        return x.astype(np.float32, copy=False)
    if method is None:
        method = "sinc" if int(target_sr) == 16000 else "fft"
    if method == "sinc":
        if int(target_sr) != 16000:
            raise ValueError(f"method 'sinc' resamples to 16000 Hz only, not {target_sr}; use method='fft'")
        # C core: torchaudio-style sinc to 16 kHz (mono in, mono out); channels one by one
        if x.ndim == 1:
            return _core.resample(np.ascontiguousarray(x, dtype=np.float32), int(orig_sr), method="sinc")
        cols = [_core.resample(np.ascontiguousarray(x[:, c], dtype=np.float32), int(orig_sr), method="sinc")
                for c in range(x.shape[1])]
        return np.stack(cols, axis=1)
    n_out = int(x.shape[0] * target_sr / orig_sr)
    limit = _core.AUDIO_MAX_SAMPLES_16K * target_sr // 16000  # 24 hours at target_sr
    if n_out > limit:
        raise AudioError(
            f"audio too long: {x.shape[0]} samples at {orig_sr} Hz would give {n_out} samples at "
            f"{target_sr} Hz (limit {limit} = 24 hours); split it into shorter pieces"
        )
    if n_out <= 0:
        raise AudioError(f"audio too short to resample ({x.shape[0]} samples at {orig_sr} Hz)")
    return _fft_resample(x, n_out)


def _load_mono_16k(path: Union[str, os.PathLike]) -> Tuple[np.ndarray, int]:
    """16 kHz mono (what every transcription of a file reads): a WAV file in
    one native pass (read, mixed block by block, resampled: the sinc
    resampler of 0.2.0's load_audio); other formats decoded by soundfile,
    then mixed and resampled by the C front end in one call."""
    p = Path(os.fspath(path))
    if p.is_file() and _is_wav(p):
        got, exc = _native_wav(p, lambda s: _core.load_wav_16k(s, method="sinc"))
        if exc is None:
            return got
        # an encoding the native reader does not decode: soundfile, below
    data, rate = read_audio(p, mono=False)
    if data.shape[0] == 0:
        return data[:, 0] if data.ndim == 2 else data, rate
    return _core.resample(data, int(rate), method="sinc"), rate


def load_audio(path: Union[str, os.PathLike], sr: Optional[int] = 16000,
               mono: bool = True) -> Tuple[np.ndarray, int]:
    """Load an audio file as float32, mixed to mono and resampled to ``sr``.

    Returns ``(audio, sample_rate)``: a 1-D array when ``mono`` (channel mean,
    as mt3-infer 0.2.0), else ``(frames, channels)``.  ``sr=None`` keeps the
    file's rate.  Raises :class:`AudioError` for a missing, unreadable or empty
    file, naming the problem (and the ``soundfile`` package when a non-WAV
    format needs it).
    """
    if sr is not None:
        if isinstance(sr, float) and sr.is_integer():
            sr = int(sr)
        sr = _core.check_sample_rate(sr)  # AudioError outside 1000..1,000,000 Hz
    if mono and sr == 16000:
        data, rate = _load_mono_16k(path)
        if data.shape[0] == 0:
            raise AudioError(f"Audio file contains no samples: {os.fspath(path)}")
        return data, 16000
    data, rate = read_audio(path, mono=mono)
    if data.shape[0] == 0:
        raise AudioError(f"Audio file contains no samples: {os.fspath(path)}")
    if sr is not None and int(sr) != rate:
        try:
            data = resample_audio(data, rate, int(sr))
        except AudioError:
            raise
        except Exception as exc:
            raise AudioError(f"Failed to resample {os.fspath(path)} from {rate} to {sr} Hz: {exc}") from exc
        rate = int(sr)
    return data, rate

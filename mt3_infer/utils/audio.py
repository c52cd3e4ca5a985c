"""0.2.0's ``mt3_infer.utils.audio``: load, validate, normalize, resample."""
from __future__ import annotations

import os
from typing import Tuple, Union

import numpy as np

from .. import _core
from ..audio import load_audio as _load_audio
from ..audio import resample_audio as _resample_audio
from ..exceptions import AudioError

# 0.2.0 refused arrays whose peak exceeds this as "suspiciously large"
# (integer PCM passed as float, usually).
SUSPICIOUS_PEAK = 10.0


def load_audio(path: Union[str, os.PathLike], sr: int = 16000) -> Tuple[np.ndarray, int]:
    """``(audio, sample_rate)``: float32 mono at ``sr`` (mean of the channels,
    torchaudio-style sinc resampling to 16 kHz, as 0.2.0 with torchaudio).
    :class:`AudioError` for a missing, unreadable or empty file."""
    return _load_audio(path, sr=sr)


def validate_audio(audio) -> Tuple[bool, str]:
    """``(True, "")`` when ``audio`` can be transcribed, else ``(False, why)``.

    0.2.0's checks and messages (ndarray, 1-D or 2-D, float32/float64, not
    empty, peak at most 10), then the C front end's (channels-first shape,
    NaN/Inf samples), which 0.2.0 let through."""
    if not isinstance(audio, np.ndarray):
        return False, f"audio must be numpy.ndarray, got {type(audio).__name__}"
    if audio.ndim not in (1, 2):
        return False, f"audio must be 1D or 2D, got shape {audio.shape}"
    if audio.dtype not in (np.float32, np.float64):
        return False, f"audio dtype must be float32 or float64, got {audio.dtype}"
    if audio.size == 0:
        return False, "audio array is empty"
    try:
        _core.check_audio(audio)
    except AudioError as exc:
        return False, str(exc)
    peak = float(np.max(np.abs(audio)))
    if peak > SUSPICIOUS_PEAK:
        return False, (f"audio values suspiciously large (max={peak:.3f}), expected roughly [-1.0, 1.0]")
    return True, ""


def normalize_audio(audio: np.ndarray) -> np.ndarray:
    """``audio / max|audio|`` (same dtype); empty or all-zero audio unchanged.
    :class:`AudioError` for NaN/Inf (0.2.0 returned an all-NaN array)."""
    audio = np.asarray(audio)
    if audio.size == 0:
        return audio
    peak = np.max(np.abs(audio))
    if not np.isfinite(peak):
        raise AudioError("cannot normalize audio containing NaN or Inf; "
                         "replace non-finite samples first (e.g. numpy.nan_to_num)")
    if peak == 0:
        return audio
    return audio / peak


def resample_audio(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """FFT resampling to ``int(len(audio) * target_sr / orig_sr)`` samples,
    float32 — 0.2.0's ``scipy.signal.resample`` method, without scipy.
    ``audio`` unchanged when the rates are equal."""
    if orig_sr == target_sr:
        return audio
    return _resample_audio(audio, orig_sr, target_sr, method="fft")


__all__ = ["load_audio", "validate_audio", "normalize_audio", "resample_audio"]

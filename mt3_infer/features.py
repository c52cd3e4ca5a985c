"""Spectrogram features of the MT3 family, computed in C (``mt3_infer._core``).

Torch is not needed: everything here runs in the native core with the GIL
released, so several threads can compute features at once.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core

#: Names accepted by ``preset``.
PRESETS = _core.PRESETS  # the native preset table's names, in its order


def compute_features(
    audio: np.ndarray,
    sr: int = 16000,
    preset: str = "mt3_pytorch",
    num_threads: int = 1,
    resampler: Optional[str] = None,
) -> np.ndarray:
    """Encoder input of one model family for a whole clip.

    Args:
        audio: NumPy array of float32, float64, int16 or int32 samples, shape
            ``(n_samples,)`` or ``(n_samples, n_channels)`` (samples first, as
            mt3-infer 0.2.0; channels are averaged). Integers are scaled to
            [-1, 1) (int16 / 32768, int32 / 2**31).
        sr: sample rate in Hz, an int from 1000 to 1,000,000 (NumPy integers
            accepted). Audio not at 16 kHz is resampled first.
        preset: ``"mt3_pytorch"`` (default model: power log-mel, centred frames,
            257 rows per segment), ``"mr_mt3"`` (magnitude log-mel 20-7600 Hz,
            trailing partial hop dropped), ``"mt3_reference"`` (the features MT3
            was trained on: TF-style mel filterbank, magnitude, safe log) or
            ``"yourmt3"`` (linear-magnitude log spectrogram, hop 300, 1024 bins,
            per-segment min/max normalisation).
        num_threads: worker threads across segments (0 = all cores). The result
            does not depend on it.
        resampler: ``"soxr_hq"`` (libsoxr HQ, librosa's default, used by
            MT3-PyTorch) or ``"sinc"`` (torchaudio's windowed sinc, used by
            YourMT3 and the anchor's ``load_audio``). ``None`` picks the one
            the preset's model uses: soxr_hq for mt3_pytorch / mt3_reference,
            sinc for mr_mt3 / yourmt3.

    Returns:
        float32 array ``(segments, frames, bins)``: (S, 256, 512) for mr_mt3 and
        mt3_reference, (S, 257, 512) for mt3_pytorch, (S, 110, 1024) for
        yourmt3. Padding rows of the last segment (and row 256 of every
        mt3_pytorch segment) are exactly 0.0. Audio shorter than one 128-sample
        hop gives zero mr_mt3 segments.

    Raises:
        AudioError (a ValueError): not an ndarray, unsupported dtype, ndim not 1
            or 2, empty, channels-first (more channels than samples, or more
            than 64 channels: pass ``audio.T``), NaN/Inf (with the sample index
            and channel), sr not an int from 1000 to 1,000,000 Hz, or more than
            24 hours of audio once resampled to 16 kHz.
        ValueError: unknown preset (the message lists the valid ones) or
            resampler.
    """
    return _core.compute_features(
        audio, sr, preset, num_threads=num_threads, resampler=resampler
    )


def resample(audio: np.ndarray, sr: int, method: str = "soxr_hq") -> np.ndarray:
    """Mix ``audio`` to mono and resample it to 16 kHz as float32.

    ``method="soxr_hq"`` gives ``ceil(n * 16000 / sr)`` samples (librosa's
    ``fix=True`` length); ``"sinc"`` reproduces ``torchaudio.functional.resample``
    (same length). Same input rules and errors as :func:`compute_features`.
    """
    return _core.resample(audio, sr, method)


def feature_layout(n_samples: int, preset: str = "mt3_pytorch") -> dict:
    """Segment count, frame/bin counts, valid frames per segment and nominal
    segment start times (s) for ``n_samples`` samples of 16 kHz audio."""
    return _core.feature_layout(n_samples, preset)


__all__ = ["PRESETS", "compute_features", "resample", "feature_layout"]

"""MT3Base: the adapter base class, with the anchor's input checks.

Concrete adapters (mt3_infer.adapters) implement ``load_model`` and
``_transcribe_midi`` (and ``_transcribe_notes``); the checks below run first, in
the anchor's order and with its messages, because user code matches on them.
"""
import abc
import warnings

import numpy as np

from . import _core
from .exceptions import AudioError

_ACCEPTED_DTYPES = (np.float32, np.float64, np.int16, np.int32)


class MT3Base(abc.ABC):
    """Base class of every transcription adapter."""

    def __init__(self):
        self._model_loaded = False

    @abc.abstractmethod
    def load_model(self, checkpoint_path=None, device="auto"):
        """Load weights; must set ``self._model_loaded = True`` on success."""

    # The anchor's three-stage hooks; adapters that run natively may implement
    # them as thin views of the native pipeline.
    def preprocess(self, audio, sr):  # pragma: no cover - optional hook
        raise NotImplementedError

    def forward(self, features):  # pragma: no cover - optional hook
        raise NotImplementedError

    def decode(self, outputs):  # pragma: no cover - optional hook
        raise NotImplementedError

    def _check_input(self, audio, sr):
        """Validate like mt3-infer 0.2.0 ``MT3Base.transcribe`` (same order and
        messages, but every audio problem is an :class:`AudioError`, which is
        also the anchor's ``ValueError``).  Returns the array to hand to the
        native pipeline (2-D input stays 2-D: the C front end mixes (samples,
        channels) by mean and refuses channels-first arrays and NaN/Inf)."""
        if not self._model_loaded:
            raise RuntimeError("Model not loaded. Call load_model() before transcription.")
        if not isinstance(audio, np.ndarray):
            raise AudioError(f"audio must be numpy.ndarray, got {type(audio).__name__}")
        if audio.dtype not in _ACCEPTED_DTYPES:
            raise AudioError(
                f"audio dtype must be float32 or float64, got {audio.dtype}. "
                "Convert with audio.astype(np.float32) (int16/int32 PCM is also accepted)."
            )
        if audio.ndim not in (1, 2):
            raise AudioError(f"audio must be 1D or 2D array, got shape {audio.shape}")
        if audio.size == 0 or audio.shape[0] == 0:
            raise AudioError("audio array is empty (0 samples); pass at least one sample of audio")
        if audio.dtype.kind == "f":
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            # NaN/Inf: no loudness warning; the C front end raises one clear
            # AudioError naming the first non-finite sample.
            if np.isfinite(peak) and peak > 1.0:
                warnings.warn(
                    f"Audio values exceed [-1.0, 1.0] range (max={peak:.3f}). "
                    "Consider normalizing audio.",
                    UserWarning,
                    stacklevel=3,
                )
        if isinstance(sr, (bool,)) or not isinstance(sr, (int, np.integer)) or sr <= 0:
            raise AudioError(f"sample rate must be positive integer, got {sr!r}")
        _core.check_sample_rate(sr)  # AUDIO_MIN_SR..AUDIO_MAX_SR, the C core's rule
        return audio

    def __repr__(self):
        status = "loaded" if self._model_loaded else "not loaded"
        return f"{type(self).__name__}(model_status={status})"

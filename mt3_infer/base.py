"""MT3Base: the adapter base class, with the anchor's input checks.

As in mt3-infer 0.2.0 it is the extension point for custom adapters: a
subclass implements ``load_model``, ``preprocess``, ``forward`` and
``decode``, and the inherited :meth:`MT3Base.transcribe` validates the input,
mixes it to mono and runs ``preprocess -> forward -> decode``.

The package's own adapters (mt3_infer.adapters) override ``transcribe`` with
their native path (the whole pipeline in C, the GIL released); they apply the
same checks first (:meth:`MT3Base._check_input`), in the anchor's order and
with its messages, because user code matches on them.
"""
import abc
import warnings

import numpy as np

from . import _core
from .exceptions import AudioError, InferenceError

_FLOAT_DTYPES = (np.float32, np.float64)
_ACCEPTED_DTYPES = _FLOAT_DTYPES + (np.int16, np.int32)


class MT3Base(abc.ABC):
    """Base class of every transcription adapter.

    Lifecycle (as mt3-infer 0.2.0): ``load_model`` -> ``preprocess`` ->
    ``forward`` -> ``decode``; ``transcribe`` runs them end to end.
    """

    def __init__(self):
        self._model_loaded = False

    @abc.abstractmethod
    def load_model(self, checkpoint_path=None, device="auto"):
        """Load weights; must set ``self._model_loaded = True`` on success."""

    @abc.abstractmethod
    def preprocess(self, audio, sr):
        """Raw mono audio (1-D float32/float64 at rate ``sr``) -> model input."""

    @abc.abstractmethod
    def forward(self, features):
        """Model input -> model output (tokens, logits...)."""

    @abc.abstractmethod
    def decode(self, outputs):
        """Model output -> ``mido.MidiFile``."""

    def transcribe(self, audio, sr=16000):
        """End-to-end transcription with the subclass's stages (0.2.0's template).

        Checks, in 0.2.0's order and with its messages: the model is loaded
        (``RuntimeError``), ``audio`` is a float32/float64 ``numpy.ndarray``
        of shape ``(n,)`` or ``(n, channels)`` and not empty, ``sr`` a
        positive integer (:class:`AudioError`, a ``ValueError``); values
        outside [-1, 1] warn (``UserWarning``).  Beyond 0.2.0: NaN/Inf
        samples and channels-first ``(channels, n)`` arrays are refused with
        an :class:`AudioError` instead of being averaged into wrong audio.
        A 2-D array is mixed to mono (mean over channels, same dtype), then
        ``decode(forward(preprocess(audio, sr)))`` is returned; an error in a
        stage is re-raised as :class:`InferenceError` (a ``RuntimeError``)
        naming the stage's exception, chained to it.
        """
        audio = self._check_input(audio, sr, template=True)
        if audio.ndim == 2:
            audio = np.mean(audio, axis=1).astype(audio.dtype)
        sr = int(sr)
        try:
            features = self.preprocess(audio, sr)
            outputs = self.forward(features)
            return self.decode(outputs)
        except Exception as exc:
            raise InferenceError(
                f"Transcription failed during {type(exc).__name__}: {exc}\n"
                f"Audio shape: {audio.shape}, Sample rate: {sr}Hz"
            ) from exc

    def _check_input(self, audio, sr, *, template=False):
        """Validate like mt3-infer 0.2.0 ``MT3Base.transcribe`` (same order and
        messages, but every audio problem is an :class:`AudioError`, which is
        also the anchor's ``ValueError``).  Native adapters (``template``
        False) also accept int16/int32 PCM and leave channels-first and
        NaN/Inf to the C front end, which refuses them while it reads the
        audio; for the template the C front end's checks run here.  Returns
        the array unchanged (2-D stays 2-D)."""
        if not self._model_loaded:
            raise RuntimeError(
                "Model not loaded. Call load_model() before transcription.\n"
                "Example: model.load_model('/path/to/checkpoint.pth')"
            )
        if not isinstance(audio, np.ndarray):
            raise AudioError(f"audio must be numpy.ndarray, got {type(audio).__name__}")
        if audio.dtype not in (_FLOAT_DTYPES if template else _ACCEPTED_DTYPES):
            extra = "" if template else " (int16/int32 PCM is also accepted)"
            raise AudioError(
                f"audio dtype must be float32 or float64, got {audio.dtype}. "
                f"Convert with audio.astype(np.float32){extra}."
            )
        if audio.ndim not in (1, 2):
            raise AudioError(f"audio must be 1D or 2D array, got shape {audio.shape}; "
                             "expected (n_samples,) or (n_samples, n_channels)")
        if audio.size == 0 or audio.shape[0] == 0:
            raise AudioError("audio array is empty (0 samples); pass at least one sample of audio")
        if audio.dtype.kind == "f":
            peak = float(np.max(np.abs(audio)))
            # NaN/Inf: no loudness warning; check_audio below raises one clear
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
        if template:
            _core.check_audio(audio)  # channels-first, too many channels, NaN/Inf
        return audio

    def __repr__(self):
        status = "loaded" if self._model_loaded else "not loaded"
        return f"{type(self).__name__}(model_status={status})"

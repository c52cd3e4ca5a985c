"""Exception hierarchy (names and parents as in mt3-infer 0.2.0).

``AudioError`` is also a ``ValueError`` and ``InferenceError`` also a
``RuntimeError``, so code written against the anchor's plain ValueError /
RuntimeError keeps working.
"""


class MT3InferError(Exception):
    """Base class of every mt3-infer error."""


class ModelNotFoundError(MT3InferError):
    """Unknown model name or alias."""


class CheckpointError(MT3InferError):
    """A checkpoint or exported model is missing, truncated, foreign or corrupt."""


class CheckpointDownloadError(CheckpointError):
    """Downloading or verifying a checkpoint failed."""


class FrameworkError(MT3InferError):
    """The runtime (torch / the libtorch engine) is missing or unusable."""


class DependencyError(MT3InferError, ImportError):
    """An optional extra a feature needs is not installed (the message names the pip command)."""


class AudioError(MT3InferError, ValueError):
    """The audio given cannot be used (dtype, shape, NaN/Inf, sample rate...)."""


class InferenceError(MT3InferError, RuntimeError):
    """The network failed while running."""


__all__ = [
    "MT3InferError",
    "ModelNotFoundError",
    "CheckpointError",
    "CheckpointDownloadError",
    "FrameworkError",
    "DependencyError",
    "AudioError",
    "InferenceError",
]

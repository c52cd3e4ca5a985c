"""mt3-infer: MT3-family music transcription (audio -> MIDI) with a native core.

``import mt3_infer`` never imports torch nor loads libtorch; the engine library
is opened the first time a model is loaded.
"""
from .exceptions import (
    AudioError,
    CheckpointDownloadError,
    CheckpointError,
    FrameworkError,
    InferenceError,
    ModelNotFoundError,
    MT3InferError,
)

__version__ = "0.3.0"

from . import _core  # noqa: E402  (native extension)
from .codec import decode_tokens, notes_to_midi  # noqa: E402

__all__ = [
    "__version__",
    "MT3InferError",
    "ModelNotFoundError",
    "CheckpointError",
    "CheckpointDownloadError",
    "FrameworkError",
    "AudioError",
    "InferenceError",
    "decode_tokens",
    "notes_to_midi",
]

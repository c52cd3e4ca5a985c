"""mt3-infer: MT3-family music transcription (audio -> MIDI) with a native core.

``import mt3_infer`` never imports torch nor loads libtorch; the engine library
is opened the first time a model is loaded.
"""
from .exceptions import (
    AudioError,
    CheckpointDownloadError,
    CheckpointError,
    DependencyError,
    FrameworkError,
    InferenceError,
    ModelNotFoundError,
    MT3InferError,
)

__version__ = "0.3.0"

from ._engine import configure_openmp as _configure_openmp  # noqa: E402

_configure_openmp()  # before _core loads libgomp (see mt3_infer._engine)
from . import _core  # noqa: E402  (native extension)
from .base import MT3Base  # noqa: E402
from .api import (  # noqa: E402
    clear_cache,
    download_model,
    get_model_info,
    list_models,
    load_model,
    transcribe,
    transcribe_notes,
)
from .session import MT3Session  # noqa: E402
from .audio import load_audio  # noqa: E402
from .features import compute_features  # noqa: E402
from .codec import decode_tokens, notes_to_midi  # noqa: E402
from .plot import plot_notes, save_plot  # noqa: E402  (matplotlib only on first call)

__all__ = [
    "__version__",
    "MT3Base",
    "MT3InferError",
    "ModelNotFoundError",
    "CheckpointError",
    "CheckpointDownloadError",
    "FrameworkError",
    "AudioError",
    "InferenceError",
    "transcribe",
    "load_model",
    "download_model",
    "list_models",
    "get_model_info",
    "clear_cache",
    "MT3Session",
    # additions (not in mt3-infer 0.2.0)
    "transcribe_notes",
    "load_audio",
    "compute_features",
    "decode_tokens",
    "notes_to_midi",
    "plot_notes",
    "save_plot",
    "DependencyError",
]

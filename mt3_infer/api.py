"""Top-level API: ``transcribe``, ``load_model``, ``download_model``,
``list_models``, ``get_model_info``, ``clear_cache`` (same names, parameters
and defaults as mt3-infer 0.2.0), plus ``transcribe_notes``.

Differences from 0.2.0 (deliberate fixes; the README's compatibility table lists them all):

* the load cache is keyed on every argument that changes the adapter (model
  id, *resolved* checkpoint path — so ``MT3_CHECKPOINT_DIR`` counts — device
  and constructor keywords) and is thread-safe: concurrent ``load_model`` calls
  for one key load once and return the same object;
* unknown keywords raise ``TypeError`` instead of being dropped or silently
  retried without arguments;
* ``list_models()`` / ``get_model_info()`` return copies;
* a missing caller-supplied ``checkpoint_path`` raises ``CheckpointError``
  instead of receiving the registry artifact;
* every downloaded file is sha256-verified; ``MT3_OFFLINE=1`` disables
  downloads like ``auto_download=False``.

Adapter classes are imported lazily by dotted path (the registry's
``adapter_class``), so ``import mt3_infer`` never imports torch.
"""
from __future__ import annotations

import importlib
import inspect
import os
import threading
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from . import registry
from .base import MT3Base
from .exceptions import CheckpointError

__all__ = [
    "transcribe",
    "transcribe_notes",
    "load_model",
    "download_model",
    "list_models",
    "get_model_info",
    "clear_cache",
]

# (model id, resolved checkpoint path, device, frozen ctor kwargs) -> adapter
_MODEL_CACHE: Dict[Tuple[Any, ...], MT3Base] = {}
_CACHE_LOCK = threading.Lock()
_KEY_LOCKS: Dict[Tuple[Any, ...], threading.Lock] = {}

# 0.2.0 whitelists, kept as a fallback when an adapter's signature cannot be read.
_ANCHOR_CTOR_KWARGS = ("auto_filter", "verbose")
_ANCHOR_CALL_KWARGS = ("adaptive", "stretch_factors", "stretch_method", "num_attempts", "return_all")

_DEVICE_HELP = "Must be 'cuda', 'cuda:N', 'cpu', 'mps', or 'auto'."


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def _normalize_device(device: Any) -> str:
    """Validate a device hint like 0.2.0 ``get_device`` (syntax only: the
    engine resolves ``auto`` and checks availability when the model loads)."""
    if device is None:
        return "auto"
    if not isinstance(device, str) and hasattr(device, "type"):  # torch.device
        device = str(device)
    if not isinstance(device, str):
        raise ValueError(f"Invalid device: {device!r}. {_DEVICE_HELP}")
    d = device.lower()
    if d in ("auto", "cpu", "cuda", "mps"):
        return d
    if d.startswith("cuda:"):
        idx = d[5:]
        if not idx.isdigit():
            raise ValueError(
                f"Invalid CUDA device index in {device!r}: the index must be a non-negative "
                f"integer, e.g. 'cuda:0'."
            )
        return f"cuda:{int(idx)}"
    raise ValueError(f"Invalid device: {device!r}. {_DEVICE_HELP}")


def _freeze(value: Any) -> Any:
    """A hashable, order-independent form of keyword values for the cache key."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(repr(v) for v in value))
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


def _import_adapter(model_id: str):
    path = registry._entry(model_id)["adapter_class"]
    module_path, class_name = path.rsplit(".", 1)
    try:
        module = importlib.import_module(module_path)
        return getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(
            f"Failed to import adapter: {path}\nError: {exc}\n"
            "Ensure required framework is installed."
        ) from exc


def _accepted(func) -> Tuple[set, bool]:
    """(named keyword parameters, accepts **kwargs) of a callable."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return set(), True
    names, var_kw = set(), False
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.add(p.name)
    names.discard("self")
    return names, var_kw


def _split_kwargs(model_id: str, cls, kwargs: Dict[str, Any], caller: str,
                  method: str = "transcribe") -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Route keywords: per-call parameters of ``cls.<method>`` first, then
    constructor parameters; anything else is a TypeError naming the choices."""
    call_names, call_var = _accepted(getattr(cls, method, None))
    call_names -= {"audio", "sr"}
    ctor_names, ctor_var = _accepted(cls.__init__)
    ctor, call = {}, {}
    for k, v in kwargs.items():
        if k in call_names:
            call[k] = v
        elif k in ctor_names:
            ctor[k] = v
        elif call_var:
            call[k] = v
        elif ctor_var:
            ctor[k] = v
        else:
            choices = sorted(call_names | ctor_names)
            raise TypeError(
                f"{caller}() got an unexpected keyword argument {k!r} for model '{model_id}' "
                f"({cls.__name__} accepts: {', '.join(choices) or 'no extra keywords'})"
            )
    return ctor, call


def _check_ctor_kwargs(model_id: str, cls, kwargs: Dict[str, Any]) -> None:
    names, var_kw = _accepted(cls.__init__)
    for k in kwargs:
        if k not in names and not var_kw:
            raise TypeError(
                f"load_model() got an unexpected keyword argument {k!r} for model '{model_id}' "
                f"({cls.__name__} accepts: {', '.join(sorted(names)) or 'no keywords'})"
            )


def _is_path(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def _prepare_checkpoint(model_id: str, explicit: Optional[Path], auto_download: bool) -> Path:
    """Make sure the checkpoint exists (download if allowed) and return the
    path to hand to the adapter: the cached TorchScript export when there is
    one (or torch can make one), else the original checkpoint."""
    from . import artifact, download

    default = registry.default_checkpoint_path(model_id)
    if explicit is not None and explicit.absolute() != default.absolute():
        if not explicit.exists() or (explicit.is_dir() and not any(explicit.iterdir())):
            raise CheckpointError(
                f"Checkpoint not found: {explicit}\n"
                f"Pass the path of an exported model (.pt) or of the original checkpoint, or omit "
                f"checkpoint_path to use the registry copy ({default})."
            )
        return explicit

    if download.missing_files(model_id):
        reason = None
        if not auto_download:
            reason = "auto_download=False"
        elif download.is_offline():
            reason = f"{download.OFFLINE_ENV}=1"
        download.fetch_model_files(model_id, offline_reason=reason)
    else:
        download._write_generated(model_id)

    if download.can_export(model_id) or registry.is_bundled(model_id):
        return artifact.resolve(model=model_id)  # current export, made or remade when needed
    # no torch here: an intact cached export, else the original checkpoint (the
    # adapter then says that turning it into the network file needs torch)
    exported = registry.exported_model_path(model_id)
    if download.exported_metadata(exported) is None:
        return default
    damage = download.export_damage(exported)
    if damage is not None:
        raise CheckpointError(
            f"the cached export {exported} is damaged ({damage}) and cannot be remade here "
            f"(needs torch); delete it, or install torch==2.13.* so that load_model remakes it")
    return exported


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------
def load_model(model: str = "default", checkpoint_path: Optional[str] = None, device: str = "auto",
               cache: bool = True, auto_download: bool = True, **kwargs: Any) -> MT3Base:
    """Load a registry model (id or alias) and return its adapter.

    Args:
        model: ``mr_mt3``, ``mt3_pytorch``, ``yourmt3``, ``mt3_small`` (the
            network bundled with the package: no download), ``magenta_mt3`` /
            ``magenta_piano`` (Magenta's original T5X checkpoints, run as its
            Colab does) or an alias (``default``, ``fast``, ``accurate``,
            ``multitask``, ``official``, ``baseline``; ``offline`` / ``small``
            for ``mt3_small``; ``magenta`` / ``colab``, ``ismir2021`` /
            ``piano``).
        checkpoint_path: an exported model file or an original checkpoint;
            default: the registry copy under ``MT3_CHECKPOINT_DIR`` or
            ``./.mt3_checkpoints``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        cache: reuse an adapter loaded with the same arguments (thread-safe).
        auto_download: fetch (sha256-verified) missing registry checkpoints;
            ``MT3_OFFLINE=1`` also disables it.
        **kwargs: adapter constructor keywords (e.g. ``auto_filter`` for
            mt3_pytorch, ``num_threads``, ``dtype="bfloat16"`` or ``"int8"``:
            opt-in reduced precision, see ``MRMT3Adapter``); unknown ones
            raise ``TypeError``.

    Raises:
        ModelNotFoundError, ValueError (device), CheckpointError,
        CheckpointDownloadError, FrameworkError, ImportError, TypeError.
    """
    model_id = registry.resolve_model_name(model)
    dev = _normalize_device(device)
    explicit = Path(os.fspath(checkpoint_path)).expanduser() if checkpoint_path is not None else None
    resolved = explicit if explicit is not None else registry.default_checkpoint_path(model_id)
    key = (model_id, str(resolved), dev, _freeze(kwargs))

    if cache:
        with _CACHE_LOCK:
            hit = _MODEL_CACHE.get(key)
            if hit is not None:
                return hit
            key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    else:
        key_lock = threading.Lock()

    with key_lock:
        if cache:
            with _CACHE_LOCK:
                hit = _MODEL_CACHE.get(key)
            if hit is not None:
                return hit
        cls = _import_adapter(model_id)
        _check_ctor_kwargs(model_id, cls, kwargs)
        path = _prepare_checkpoint(model_id, explicit, auto_download)
        adapter = cls(**kwargs)
        adapter.load_model(str(path), device=dev)
        if cache:
            with _CACHE_LOCK:
                _MODEL_CACHE[key] = adapter
    return adapter


def _audio_and_rate(audio: Any, sr: int) -> Tuple[Any, int]:
    if _is_path(audio):
        from .audio import load_audio

        return load_audio(audio)  # 16 kHz mono, as 0.2.0's load_audio
    return audio, sr


def transcribe(audio: Union[np.ndarray, str, os.PathLike], model: str = "default", sr: int = 16000,
               checkpoint_path: Optional[str] = None, device: str = "auto",
               auto_download: bool = True, **kwargs: Any):
    """Transcribe audio to a ``mido.MidiFile`` with a cached model.

    ``audio`` is a float32/float64 (or int16/int32 PCM) array of shape
    ``(n,)`` or ``(n, channels)`` at rate ``sr`` — or a path to an audio file
    (its own rate is used).  Keywords go to ``adapter.transcribe`` when it
    accepts them (e.g. YourMT3's ``adaptive``), else to the adapter
    constructor (e.g. ``auto_filter``); unknown ones raise ``TypeError``.
    """
    model_id = registry.resolve_model_name(model)
    cls = _import_adapter(model_id)
    ctor, call = _split_kwargs(model_id, cls, kwargs, "transcribe")
    adapter = load_model(model_id, checkpoint_path=checkpoint_path, device=device,
                         auto_download=auto_download, **ctor)
    audio, sr = _audio_and_rate(audio, sr)
    return adapter.transcribe(audio, sr=sr, **call)


def transcribe_notes(audio: Union[np.ndarray, str, os.PathLike], model: str = "default",
                     sr: int = 16000, checkpoint_path: Optional[str] = None, device: str = "auto",
                     auto_download: bool = True, **kwargs: Any) -> np.ndarray:
    """Like :func:`transcribe` but returns the notes as a NumPy structured array
    (``onset``/``offset`` seconds f8, ``pitch``, ``velocity``, ``program`` i4,
    ``is_drum`` bool), sorted by (onset, pitch, program)."""
    model_id = registry.resolve_model_name(model)
    cls = _import_adapter(model_id)
    ctor, call = _split_kwargs(model_id, cls, kwargs, "transcribe_notes", method="transcribe_notes")
    adapter = load_model(model_id, checkpoint_path=checkpoint_path, device=device,
                         auto_download=auto_download, **ctor)
    audio, sr = _audio_and_rate(audio, sr)
    return adapter.transcribe_notes(audio, sr=sr, **call)


def list_models() -> Dict[str, Dict[str, Any]]:
    """Registry entries keyed by canonical id (copies; mutate freely)."""
    return registry.list_models()


def _load_registry() -> Dict[str, Any]:
    """The whole registry in mt3-infer 0.2.0's private shape
    (``{"default", "aliases", "models"}``, as its checkpoints.yaml loaded),
    for code written against that internal.  A copy; prefer
    :func:`list_models` / :func:`get_model_info`."""
    return {"default": registry.DEFAULT_MODEL, "aliases": registry.aliases(), "models": registry.list_models()}


def get_model_info(model: str) -> Dict[str, Any]:
    """One registry entry (id or alias; a copy).  Unknown → ModelNotFoundError."""
    return registry.get_model_info(model)


def clear_cache() -> None:
    """Drop every cached adapter (objects are freed once nothing else holds them)."""
    with _CACHE_LOCK:
        _MODEL_CACHE.clear()
        _KEY_LOCKS.clear()


def download_model(model: str = "default", *, force: bool = False, verify: bool = False,
                   export: Optional[bool] = None, progress: Any = None,
                   quiet: Optional[bool] = None) -> Optional[Path]:
    """Download a model's checkpoint into the checkpoint root and return its path
    (a file for mr_mt3/yourmt3, the directory for mt3_pytorch).

    Existing files of the right size are kept; ``verify=True`` re-checks their
    sha256 (and re-downloads a bad copy); ``force=True`` re-downloads.  With
    torch installed the TorchScript export is made once and cached
    (``export=False`` skips it).  Progress on stderr when it is a terminal.
    """
    from . import download

    return download.download_model(model, force=force, verify=verify, export=export,
                                   progress=progress, quiet=quiet)

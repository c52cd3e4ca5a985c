"""MT3Session: an explicit load / infer / release / close lifecycle for one model.

Same constructor, attributes, statuses and messages as mt3-infer 0.2.0's
``MT3Session``.  Differences: an unknown model raises an error that is both a
``KeyError`` (as 0.2.0) and a ``ModelNotFoundError`` (as the rest of the
API); state changes are guarded by a lock; ``release()`` frees the native
model (adapter ``close()``/``release()`` when present) instead of moving a
torch module to the CPU.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Optional

from . import registry
from .exceptions import ModelNotFoundError


class UnknownProfileError(ModelNotFoundError, KeyError):
    """Unknown MT3Session profile (a KeyError, as in 0.2.0, and a ModelNotFoundError)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _profile(model: str) -> Dict[str, Any]:
    try:
        return registry.catalog_profile(model)
    except ModelNotFoundError:
        available = registry.model_ids() + list(registry.aliases())
        raise UnknownProfileError(f"unknown MT3 profile {model!r}; available: {available}") from None


class MT3Session:
    """Explicit lifecycle for one MT3 profile; only the loaded model is resident.

    Statuses: ``new`` → ``loading`` → ``ready`` (or ``failed``) → ``released``
    → ``closed``.  Usable as a context manager (enter = load, exit = close).
    """

    def __init__(self, model: str = "default", *, backend: Optional[str] = None,
                 device: str = "auto", checkpoint_path: Optional[str] = None,
                 auto_download: bool = True, **model_kwargs: Any) -> None:
        profile = _profile(model)
        self.model = profile["id"]
        self.backend = backend or profile.get("backend", "pytorch")
        self.device = device
        self.checkpoint_path = checkpoint_path
        self.auto_download = auto_download
        self.model_kwargs = model_kwargs
        self._adapter = None
        self._status = "new"
        self._component_status: Dict[str, str] = {self.model: "new"}
        self._lock = threading.RLock()

    # -- state ---------------------------------------------------------------
    @property
    def status(self) -> str:
        return self._status

    @property
    def component_status(self) -> Dict[str, str]:
        return dict(self._component_status)

    def _set(self, status: str) -> None:
        self._status = status
        self._component_status[self.model] = status

    # -- lifecycle -----------------------------------------------------------
    def load(self) -> "MT3Session":
        """Load the model (never through the global cache); idempotent when ready."""
        with self._lock:
            if self._status == "closed":
                raise RuntimeError("cannot load a closed MT3Session")
            if self._status == "ready":
                return self
            self._set("loading")
            try:
                from .api import _normalize_device, load_model

                path = registry.resolve_checkpoint_path(self.model, self.checkpoint_path)
                device = _normalize_device(self.device)
                self._adapter = load_model(
                    self.model,
                    checkpoint_path=str(path) if path is not None else None,
                    device=device,
                    auto_download=self.auto_download,
                    cache=False,
                    **self.model_kwargs,
                )
                self.device = getattr(self._adapter, "device", None) or device
                if not isinstance(self.device, str):
                    self.device = str(self.device)
                self._set("ready")
                return self
            except BaseException:
                self._adapter = None
                self._set("failed")
                raise

    def infer(self, audio: Any, *, sr: int = 16000, **kwargs: Any):
        """``adapter.transcribe(audio, sr=sr, **kwargs)`` → mido.MidiFile."""
        adapter = self._ready_adapter()
        return adapter.transcribe(audio, sr=sr, **kwargs)

    def infer_notes(self, audio: Any, *, sr: int = 16000, **kwargs: Any):
        """``adapter.transcribe_notes(audio, sr=sr, **kwargs)`` → structured notes array."""
        adapter = self._ready_adapter()
        return adapter.transcribe_notes(audio, sr=sr, **kwargs)

    def infer_many(self, inputs: Any, *, sr: int = 16000, **kwargs: Any):
        """``adapter.transcribe_many(inputs, sr=sr, **kwargs)``: arrays, ``(array,
        sr)`` pairs or file paths through one shared decoder; a list in input
        order with a ``mido.MidiFile`` or the exception of each input."""
        adapter = self._ready_adapter()
        if not hasattr(adapter, "transcribe_many"):
            raise TypeError(f"{type(adapter).__name__} has no transcribe_many")
        return adapter.transcribe_many(inputs, sr=sr, **kwargs)

    def _ready_adapter(self):
        with self._lock:
            if self._status != "ready" or self._adapter is None:
                raise RuntimeError("MT3Session must be ready; call load() before infer()")
            return self._adapter

    def release(self) -> "MT3Session":
        """Free the resident model (disk cache untouched); returns self."""
        with self._lock:
            if self._status == "closed":
                return self
            adapter, self._adapter = self._adapter, None
            if adapter is not None:
                for name in ("close", "release"):
                    fn = getattr(adapter, name, None)
                    if callable(fn):
                        fn()
                        break
                else:
                    model_obj = getattr(adapter, "model", getattr(adapter, "_model", None))
                    if model_obj is not None and callable(getattr(model_obj, "cpu", None)):
                        model_obj.cpu()
            self._set("released")
            return self

    def close(self) -> "MT3Session":
        """Release, then refuse further loads; idempotent; returns self."""
        with self._lock:
            if self._status != "closed":
                self.release()
                self._set("closed")
            return self

    def cache_info(self) -> Dict[str, Any]:
        """Where this session's checkpoint lives and its state (creates nothing)."""
        profile = _profile(self.model)
        path = registry.resolve_checkpoint_path(self.model, self.checkpoint_path)
        return {
            "package": "mt3-infer",
            "model": self.model,
            "backend": self.backend,
            "cache_key": registry.cache_key(self.model, backend=self.backend),
            "checkpoint_path": str(path) if path is not None else None,
            "checkpoint_url": profile.get("url"),
            "sha256": profile.get("sha256"),
            "status": self._status,
            "model_loaded": self._adapter is not None,
            "components": self.component_status,
        }

    def __enter__(self) -> "MT3Session":
        return self.load()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False

    def __repr__(self) -> str:
        return f"MT3Session(model={self.model!r}, status={self._status!r})"


__all__ = ["MT3Session", "UnknownProfileError"]

"""0.2.0's ``mt3_infer.utils.framework``: framework version checks, device choice.

Only PyTorch runs models here (through the libtorch engine); the TensorFlow
and JAX checks are kept for code that calls them.
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings
from typing import Optional

from ..exceptions import FrameworkError


def _version_tuple(name: str, version: str):
    try:
        return tuple(int(p) for p in version.split("+")[0].split(".")[:2])
    except ValueError as exc:
        raise FrameworkError(f"Cannot parse {name} version: {version}") from exc


def _require(module: str, pip_name: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise FrameworkError(f"{pip_name} is not installed. Install with: pip install {pip_name}") from exc


def check_torch_version() -> None:
    """:class:`FrameworkError` unless the models can run: the libtorch engine
    is installed and torch of the release it was built against (major.minor)
    is installed — this build's rule, not 0.2.0's ``torch>=2.0``; the message
    names the problem and the exact ``pip install``.  Does not import torch."""
    from .._engine import check_torch

    check_torch()


def check_tensorflow_version() -> None:
    """:class:`FrameworkError` unless tensorflow >= 2.13 is installed (0.2.0's rule)."""
    tf = _require("tensorflow", "tensorflow")
    if _version_tuple("TensorFlow", tf.__version__) < (2, 13):
        raise FrameworkError(f"tensorflow>=2.13.0 required, found tensorflow=={tf.__version__}")


def check_jax_version() -> None:
    """:class:`FrameworkError` unless jax 0.4.28 is installed (0.2.0's rule)."""
    jax = _require("jax", "jax")
    if not jax.__version__.startswith("0.4.28"):
        raise FrameworkError(f"jax==0.4.28 required, found jax=={jax.__version__}")


def _cuda_works() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    try:
        import torch

        if not torch.cuda.is_available():
            return False
        torch.zeros(1, device="cuda")
        return True
    except Exception as exc:  # broken driver, no device memory...
        warnings.warn(f"CUDA available but failed to initialize: {exc}. Falling back to CPU.",
                      UserWarning, stacklevel=3)
        return False


def get_device(device_hint: Optional[str] = None) -> str:
    """``"cuda"`` or ``"cpu"`` (``"cuda:N"``/``"mps"`` pass through) for a hint.

    ``None``/``"auto"``: ``"cuda"`` when torch is installed and a CUDA device
    works, else ``"cpu"`` with a ``UserWarning``; ``"cuda"`` falls back to
    ``"cpu"`` with a warning when none works (0.2.0's behaviour).  The hint is
    parsed by the same rule as ``load_model(device=...)`` (case-insensitive;
    anything else is a ``ValueError`` "Invalid device")."""
    from ..api import _normalize_device

    device = _normalize_device(device_hint)
    if device not in ("auto", "cuda"):
        return device
    if _cuda_works():
        return "cuda"
    if device == "auto":
        warnings.warn("No GPU detected or GPU initialization failed. Using CPU for inference. "
                      "This may be significantly slower than GPU inference.", UserWarning, stacklevel=2)
    else:
        warnings.warn("CUDA requested but not available. Falling back to CPU.", UserWarning, stacklevel=2)
    return "cpu"


__all__ = ["check_torch_version", "check_tensorflow_version", "check_jax_version", "get_device"]

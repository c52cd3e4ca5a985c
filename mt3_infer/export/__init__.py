"""Exporters: upstream checkpoints -> TorchScript artifacts (torch needed).

``export_checkpoint(model, checkpoint, out)`` runs the exporter of the
model's network family (:data:`mt3_infer.registry.FAMILIES`: ``mt3`` ->
:mod:`.mt3`, ``yourmt3`` -> :mod:`.yourmt3`).  MR-MT3, MT3-PyTorch and the
bundled mt3_small share one network family, so one artifact of an ``mt3.pth``
serves both MT3 adapters (the encoder accepts 256 or 257 frames).  Caching,
freshness and locking live in :mod:`mt3_infer.artifact`; the command line is
``mt3-infer export`` (``python -m mt3_infer.export`` is the same command).

Importing this package does not import torch; the sub-modules do.
"""
import importlib
import os

from ..exceptions import ModelNotFoundError


def _family(model) -> str:
    from .. import registry

    name = str(model).strip().lower().replace("-", "_")
    if name in registry.FAMILIES:
        return name
    try:
        return registry.family(name)
    except ModelNotFoundError:
        pass
    raise ModelNotFoundError(
        f"cannot export unknown model {model!r}; choose a model ("
        + ", ".join(m for m in registry.model_ids() if not registry.is_bundled(m))
        + ") or a network family (" + ", ".join(registry.FAMILIES) + ")"
    )


def export_checkpoint(model, checkpoint, out):
    """Export ``checkpoint`` of ``model`` (a registry id or alias, or a
    network family) to the TorchScript file ``out``; returns ``out``.

    Raises CheckpointError for a wrong/corrupt checkpoint, FrameworkError
    when torch is not importable, ModelNotFoundError for an unknown model."""
    from .. import registry
    from .common import require_torch

    family = _family(model)
    require_torch()
    module = importlib.import_module(registry.FAMILIES[family]["exporter"])
    out = os.fspath(out)
    module.export_checkpoint(os.fspath(checkpoint), out)
    return out


__all__ = ["export_checkpoint"]

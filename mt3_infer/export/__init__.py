"""Exporters: upstream checkpoints -> TorchScript artifacts (torch needed).

``export_checkpoint(model, checkpoint, out)`` is the entry point the CLI
(``mt3-infer export --model mr_mt3|mt3_pytorch|yourmt3 CHECKPOINT -o OUT``)
calls.  MR-MT3 and MT3-PyTorch share one network and one weight file, so they
share one artifact (the encoder accepts 256 or 257 frames).

Importing this package does not import torch; the sub-modules do.
"""
import os

from ..exceptions import ModelNotFoundError

MT3_MODELS = ("mr_mt3", "mt3_pytorch", "mt3")
YOURMT3_MODELS = ("yourmt3",)


def export_checkpoint(model, checkpoint, out):
    """Export ``checkpoint`` of ``model`` ('mr_mt3', 'mt3_pytorch', 'mt3' or
    'yourmt3') to the TorchScript file ``out``; returns ``out``.

    Raises CheckpointError for a wrong/corrupt checkpoint, FrameworkError
    when torch is not importable, ModelNotFoundError for an unknown model."""
    name = str(model).strip().lower().replace("-", "_")
    out = os.fspath(out)
    if name in MT3_MODELS:
        from .common import require_torch

        require_torch()
        from .mt3 import export_mt3

        return export_mt3(checkpoint, out)
    if name in YOURMT3_MODELS:
        from .common import require_torch

        require_torch()
        from . import yourmt3

        yourmt3.export_checkpoint(checkpoint, out)
        return out
    raise ModelNotFoundError(
        f"cannot export unknown model {model!r}; choose one of "
        + ", ".join(MT3_MODELS[:2] + YOURMT3_MODELS)
    )


__all__ = ["export_checkpoint", "MT3_MODELS", "YOURMT3_MODELS"]

"""Transcription adapters (mt3-infer 0.2.0 names), running natively.

``MRMT3Adapter`` and ``MT3PyTorchAdapter`` share one network (``mt3.pth``);
``YourMT3Adapter`` is imported on first use.  Importing this package does not
import torch (only exporting an original checkpoint does).
"""
from .mr_mt3 import MRMT3Adapter
from .mt3_pytorch import MT3PyTorchAdapter

__all__ = ["MRMT3Adapter", "MT3PyTorchAdapter", "YourMT3Adapter"]


def __getattr__(name):
    if name == "YourMT3Adapter":
        from .yourmt3 import YourMT3Adapter

        return YourMT3Adapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

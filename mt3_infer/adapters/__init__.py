"""Transcription adapters (mt3-infer 0.2.0 names), running natively.

``MRMT3Adapter`` and ``MT3PyTorchAdapter`` share one network (``mt3.pth``);
``YourMT3Adapter`` runs the YourMT3 network (``last.ckpt``); ``MT3SmallAdapter``
runs the small MT3 network shipped inside the package (no download);
``MagentaMT3Adapter`` / ``MagentaPianoAdapter`` run Magenta's original T5X
checkpoints (``mt3``, ``ismir2021``) the Colab's way.  Importing this
package does not import torch (only exporting an original checkpoint does).
"""
from .magenta import MagentaMT3Adapter, MagentaPianoAdapter
from .mr_mt3 import MRMT3Adapter
from .mt3_pytorch import MT3PyTorchAdapter
from .mt3_small import MT3SmallAdapter
from .yourmt3 import YourMT3Adapter

__all__ = ["MagentaMT3Adapter", "MagentaPianoAdapter", "MRMT3Adapter", "MT3PyTorchAdapter", "MT3SmallAdapter",
           "YourMT3Adapter"]

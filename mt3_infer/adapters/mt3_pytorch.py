"""MT3PyTorchAdapter: MT3-PyTorch (kunato's port) as run by mt3-infer 0.2.0, natively.

Recipe (specs/mt3-family.md §11): resampling to 16 kHz with libsoxr HQ
(librosa's ``soxr_hq``), 1..128 zeros of end padding, 257-frame centred
power log-mel segments (20-8000 Hz), greedy decoding (≤ 1024 tokens),
Magenta's note decoding with start times floored to 10 ms, the pretty_midi
style writer, and ``auto_filter`` (on by default, as in the anchor).

Unlike the anchor, segments are decoded in batches with a key/value cache and
start times are passed explicitly, so one adapter may be used from several
threads at once.
"""
from __future__ import annotations

from typing import Optional

from .. import _core
from ._mt3 import MT3AdapterBase, feature_preset


class MT3PyTorchAdapter(MT3AdapterBase):
    """MT3-PyTorch transcription adapter (the default model).

    Args:
        auto_filter: the anchor's drum-leakage post-process of the MIDI file
            (on by default).
        features: ``"anchor"`` (default: mt3-infer 0.2.0's centred power
            log-mel, 257 frames) or ``"reference"`` (the Magenta/ddsp features
            the checkpoint was trained on: left-aligned magnitude, TF mel
            filterbank 20-7600 Hz, 256 frames; specs/mt3-family.md §2.4, §10
            item 1).  Not the anchor's output, so off by default.
        num_threads, batch_size, max_new_tokens, max_memory_mb, dtype: as for
            :class:`~mt3_infer.adapters.MRMT3Adapter`.

    ``load_model`` accepts the anchor's directory (``config.json`` +
    ``mt3.pth``), ``mt3.pth`` itself, or an exported ``.pt`` file.
    """

    _RECIPE = "mt3_pytorch"
    MAX_LENGTH = 256
    MAX_GENERATION_LENGTH = 1024

    def __init__(self, auto_filter: bool = True, *, features: str = "anchor",
                 num_threads: Optional[int] = None, batch_size: Optional[int] = None,
                 max_new_tokens: Optional[int] = None, dtype: str = "float32",
                 max_memory_mb: Optional[int] = None):
        self._preset = feature_preset(features)
        super().__init__(num_threads=num_threads, batch_size=batch_size,
                         max_new_tokens=max_new_tokens, dtype=dtype, max_memory_mb=max_memory_mb)
        self.auto_filter = bool(auto_filter)
        self.features = features

    def _extra_run_args(self) -> dict:
        return {"midi_flags": _core.MIDI_AUTO_FILTER if self.auto_filter else 0,
                "preset": self._preset}


__all__ = ["MT3PyTorchAdapter"]

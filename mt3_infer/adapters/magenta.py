"""Magenta's original checkpoints, run the way Magenta's Colab runs them.

Two models (``specs/magenta-t5x.md``):

* :class:`MagentaMT3Adapter` (model ``magenta_mt3``): the multi-instrument
  ``mt3`` checkpoint (``gs://mt3/checkpoints/mt3``);
* :class:`MagentaPianoAdapter` (model ``magenta_piano``): the ``ismir2021``
  piano model, 127 velocity bins (the first model here with real
  velocities), 512-frame inputs, no ties, a 1664-id vocabulary.

Recipe (the C recipe table, ``csrc/core/pipeline.h``): audio at other rates
resampled to 16 kHz with libsoxr HQ (``librosa.load``'s default, which the
Colab uses), the reference spectrogram (``mt3_reference``: ddsp magnitude
log-mel, TF mel bank 20-7600 Hz; 256 frames per 2.048 s segment, 512 frames
per 4.096 s for ``ismir2021``), t5x beam search with one beam and length
penalty 0.6 up to 1024 tokens (``decoding="beam1"``; ``"greedy"`` is the
explicit alternative), Magenta's token clean-up (PAD/UNK/extra ids skipped,
not ending the segment), Magenta's note decoding, and note_seq's
``sequence_proto_to_midi_file`` MIDI writing (through pretty_midi).

Networks come from the T5X checkpoint folders (a ``checkpoint`` msgpack file
plus zarr folders), read without JAX, TensorFlow or tensorstore
(:mod:`mt3_infer.export.t5x`, needs the ``magenta`` extra: msgpack) and
exported once to the engine's file (family ``"magenta"``: Magenta's
positional table; needs torch).  An export of ``mt3.pth`` is refused:
same weights as ``mt3``, but the port's positional table.
"""
from __future__ import annotations

from typing import Optional

from ._mt3 import MT3AdapterBase

_DECODINGS = ("beam1", "greedy")


class MagentaMT3Adapter(MT3AdapterBase):
    """Magenta's ``mt3`` checkpoint (model ``magenta_mt3``, aliases
    ``magenta``, ``colab``).

    Args:
        decoding: ``"beam1"`` (default: what the Colab runs, t5x beam search
            with one beam and brevity penalty ((5 + n) / 6) ** 0.6) or
            ``"greedy"`` (argmax at every step, as the PyTorch ports; the
            tokens differ where the rule prefers an earlier or later EOS).
        num_threads, batch_size, max_new_tokens, max_memory_mb, dtype: as for
            :class:`~mt3_infer.adapters.MRMT3Adapter`.

    ``load_model`` accepts the T5X checkpoint folder (with its ``checkpoint``
    file), the ``checkpoint`` file itself, or an exported ``.pt`` file made
    from it (``mt3-infer export magenta_mt3 FOLDER``).
    """

    _RECIPE = "magenta_mt3"
    _FAMILY = "magenta"
    MAX_LENGTH = 256
    MAX_GENERATION_LENGTH = 1024

    def __init__(self, decoding: str = "beam1", *, num_threads: Optional[int] = None,
                 batch_size: Optional[int] = None, max_new_tokens: Optional[int] = None,
                 dtype: str = "float32", max_memory_mb: Optional[int] = None):
        if decoding not in _DECODINGS:
            raise ValueError(f"decoding must be 'beam1' (t5x beam search with one beam, what Magenta's "
                             f"Colab runs; the default) or 'greedy', got {decoding!r}")
        super().__init__(num_threads=num_threads, batch_size=batch_size,
                         max_new_tokens=max_new_tokens, dtype=dtype, max_memory_mb=max_memory_mb)
        self.decoding = decoding

    def _extra_run_args(self) -> dict:
        return {"decoding": self.decoding}


class MagentaPianoAdapter(MagentaMT3Adapter):
    """Magenta's ``ismir2021`` piano checkpoint (model ``magenta_piano``,
    aliases ``ismir2021``, ``piano``): notes with velocities (127 bins),
    4.096 s segments of 512 frames.  Arguments as
    :class:`MagentaMT3Adapter`."""

    _RECIPE = "magenta_piano"
    MAX_LENGTH = 512


__all__ = ["MagentaMT3Adapter", "MagentaPianoAdapter"]

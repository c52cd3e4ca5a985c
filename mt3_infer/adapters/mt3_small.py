"""MT3SmallAdapter: the small MT3 network shipped inside the package.

Same architecture as MT3 (T5 encoder-decoder over log-mel frames, the MT3
codec with ties), smaller dimensions, trained by this project on synthetic
FluidSynth renders with exactly known notes (``tools/synth``,
``tools/train_small.py``; recipe in ``tools/README.md``).  Nothing is
downloaded: the exported network lies in ``mt3_infer/models/`` and is run by
libtorch (the torch *Python* package is not imported).

Recipe: the MT3-PyTorch pipeline with the features the network was trained on
(``mt3_reference``: Magenta/ddsp magnitude log-mel, TF filterbank 20-7600 Hz,
256 left-aligned frames per 2.048 s segment), resampling to 16 kHz with
libsoxr HQ, greedy decoding, Magenta's note decoding with start times floored
to 10 ms, and the pretty_midi style writer.  ``auto_filter`` (the anchor's
drum-leakage patch for the pretrained MT3) is off by default here.
"""
from __future__ import annotations

from typing import Optional

from .mt3_pytorch import MT3PyTorchAdapter


class MT3SmallAdapter(MT3PyTorchAdapter):
    """The bundled small MT3 (model id ``mt3_small``, alias ``offline``).

    Args:
        auto_filter: the anchor's drum-leakage post-process (off by default).
        features: ``"reference"`` (default: what the network was trained on)
            or ``"anchor"``.
        num_threads, batch_size, max_new_tokens, max_memory_mb, dtype: as for
            :class:`~mt3_infer.adapters.MT3PyTorchAdapter`.

    ``load_model()`` with no path loads the bundled network; any exported
    MT3 file or ``mt3.pth`` made by ``tools/train_small.py --export`` works too.
    """

    def __init__(self, auto_filter: bool = False, *, features: str = "reference",
                 num_threads: Optional[int] = None, batch_size: Optional[int] = None,
                 max_new_tokens: Optional[int] = None, dtype: str = "float32",
                 max_memory_mb: Optional[int] = None):
        super().__init__(auto_filter, features=features, num_threads=num_threads,
                         batch_size=batch_size, max_new_tokens=max_new_tokens, dtype=dtype,
                         max_memory_mb=max_memory_mb)

    def load_model(self, checkpoint_path=None, device="auto"):
        if checkpoint_path is None:
            from .. import download

            # the bundled file's path; CheckpointError naming it when missing or damaged
            checkpoint_path = download.fetch_model_files("mt3_small", quiet=True)
        return super().load_model(checkpoint_path, device=device)


__all__ = ["MT3SmallAdapter"]

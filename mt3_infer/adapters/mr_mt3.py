"""MRMT3Adapter: MR-MT3 as run by mt3-infer 0.2.0, natively.

Recipe (specs/mt3-family.md §11): 16 kHz mono (no resampling: other rates
raise, as in the anchor — ``resample=True`` relaxes this), 128-sample hops with
the trailing partial hop dropped, 256-frame log-mel segments (magnitude,
20-7600 Hz), greedy decoding of every segment (≤ 1024 tokens), the anchor's
own token-to-note rules and its single-track MIDI writer.
"""
from __future__ import annotations

from typing import Optional

from .. import _core
from ._mt3 import MT3AdapterBase, SampleRateError, feature_preset


class MRMT3Adapter(MT3AdapterBase):
    """MR-MT3 transcription adapter (same weights as MT3-PyTorch: ``mt3.pth``).

    Args:
        resample: accept audio at any rate and resample it to 16 kHz with the
            torchaudio-style sinc resampler (what the anchor's ``load_audio``
            applies before MR-MT3 sees the audio).  Off by default: like
            mt3-infer 0.2.0, non-16 kHz input raises (``SampleRateError``, an
            ``AudioError`` and a ``RuntimeError``).
        corrected: opt into the fixes of specs/mt3-family.md §10 for this
            adapter (off by default, so the output stays byte-identical to
            mt3-infer 0.2.0): Magenta's drop rule for events past the next
            segment's start, Magenta's 10 ms drums (no collision with program
            9), and a MIDI writer with ticks rounded from absolute times (no
            drift) and one channel/program change per instrument.
        features: ``"anchor"`` (default: the anchor's torchaudio-style
            log-mel) or ``"reference"`` (the Magenta/ddsp features the
            checkpoint was trained on, specs §2.4).
        num_threads, batch_size, max_new_tokens, max_memory_mb: defaults for every call
            (CPU threads; segments per network batch, default all;
            tokens per segment, default 1024).
        dtype: ``"float32"`` (default: the reference outputs).  Opt-in, faster,
            outputs differ from float32: ``"bfloat16"`` on CUDA and on CPUs
            with AVX512-BF16 (elsewhere a clear error), ``"float16"`` on
            CUDA, ``"int8"`` on the CPU (the decoder's linear layers in int8
            with per-call activation scales, so a row's output also depends
            on the other rows of its batch).  Measured speed and agreement
            with float32: ``benchmarks/bench_limit.py`` (README, Performance).
    """

    _RECIPE = "mr_mt3"
    MAX_GENERATION_LENGTH = 1024

    def __init__(self, resample: bool = False, *, corrected: bool = False, features: str = "anchor",
                 num_threads: Optional[int] = None, batch_size: Optional[int] = None,
                 max_new_tokens: Optional[int] = None, dtype: str = "float32",
                 max_memory_mb: Optional[int] = None):
        self._preset = feature_preset(features)
        super().__init__(num_threads=num_threads, batch_size=batch_size,
                         max_new_tokens=max_new_tokens, dtype=dtype, max_memory_mb=max_memory_mb)
        self.resample = bool(resample)
        self.corrected = bool(corrected)
        self.features = features

    def _check_rate(self, sr: int) -> None:
        if sr != self.SAMPLE_RATE and not self.resample:
            raise SampleRateError(
                f"MR-MT3 expects 16000 Hz audio, got sr={sr}. Resample first "
                "(mt3_infer.load_audio(path) returns 16 kHz audio) or create the adapter with "
                "MRMT3Adapter(resample=True)."
            )

    def _extra_run_args(self) -> dict:
        extra = {"allow_resample": self.resample, "preset": self._preset}
        if self.corrected:
            extra["decode_flags"] = _core.DECODE_CORRECTED
            extra["midi_flags"] = _core.MIDI_CORRECTED
        return extra


__all__ = ["MRMT3Adapter"]

"""YourMT3Adapter: YourMT3 ("YPTF.MoE+Multi (noPS)") as run by mt3-infer 0.2.0, natively.

Recipe (specs/yourmt3.md §2-§7): torchaudio-style windowed-sinc resampling to
16 kHz, segments of 32,767 samples (zero-padded last one), the linear
log-magnitude spectrogram (hop 300, 1024 bins, per-segment min-max
normalisation; 110 frames), the Perceiver-TF + MoE encoder and the 13-channel
T5 decoder exported to TorchScript (greedy, key/value cache, ≤ 256 tokens per
channel, the first generated token never tested for EOS), 8 segments per
batch, YourMT3's 13-channel note decoding and merge, and its MIDI writer
(480 ticks per beat, one track per program).  All of it runs in C/libtorch
with the GIL released (``_core.AdapterCore("yourmt3")``).

``load_model`` accepts an exported file (``mt3-infer export --model yourmt3``)
or the original Lightning ``last.ckpt``, which is read without executing
pickled code and exported once into ``<stem>.mt3i.pt`` beside it (needs torch).

Not reproduced: the adaptive time-stretch mode needs librosa/pyrubberband,
which this package does not depend on (see :meth:`YourMT3Adapter.transcribe`).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

from .. import registry
from ..exceptions import CheckpointError, InferenceError, ModelNotFoundError
from ..utils.midi import count_notes
from ._mt3 import MT3AdapterBase, midi_from_bytes

DEFAULT_MODEL_KEY = "yptf_moe_nops"

_MOE_ARGS = ['-tk', 'mc13_full_plus_256', '-dec', 'multi-t5', '-nl', '26',
             '-enc', 'perceiver-tf', '-sqr', '1', '-ff', 'moe', '-wf', '4',
             '-nmoe', '8', '-kmoe', '2', '-act', 'silu', '-epe', 'rope',
             '-rp', '1', '-ac', 'spec', '-hop', '300', '-atc', '1']

# The five variants mt3-infer 0.2.0 names (values as the anchor's table; the
# architecture itself is always read from the checkpoint).  Only the default
# one is in the model registry; the exporter refuses checkpoints whose
# architecture differs from it with a CheckpointError naming the setting.
CHECKPOINT_CONFIGS = {
    "ymt3plus": {
        "name": "YMT3+",
        "checkpoint": "notask_all_cross_v6_xk2_amp0811_gm_ext_plus_nops_b72@model.ckpt",
        "args": [],
        "description": "Base model, no pitch shift (518MB)",
    },
    "yptf_single": {
        "name": "YPTF+Single (noPS)",
        "checkpoint": "ptf_all_cross_rebal5_mirst_xk2_edr005_attend_c_full_plus_b100@model.ckpt",
        "args": ['-enc', 'perceiver-tf', '-ac', 'spec', '-hop', '300', '-atc', '1'],
        "description": "PerceiverTF encoder, single-track (345MB)",
    },
    "yptf_multi": {
        "name": "YPTF+Multi (PS)",
        "checkpoint": "mc13_256_all_cross_v6_xk5_amp0811_edr005_attend_c_full_plus_2psn_nl26_sb_b26r_800k@model.ckpt",
        "args": ['-tk', 'mc13_full_plus_256', '-dec', 'multi-t5', '-nl', '26',
                 '-enc', 'perceiver-tf', '-ac', 'spec', '-hop', '300', '-atc', '1'],
        "description": "Multi-track with pitch shift (517MB)",
    },
    "yptf_moe_nops": {
        "name": "YPTF.MoE+Multi (noPS)",
        "checkpoint": "mc13_256_g4_all_v7_mt3f_sqr_rms_moe_wf4_n8k2_silu_rope_rp_b36_nops@last.ckpt",
        "args": list(_MOE_ARGS),
        "description": "Mixture of Experts, no pitch shift (536MB)",
    },
    "yptf_moe_ps": {
        "name": "YPTF.MoE+Multi (PS)",
        "checkpoint": "mc13_256_g4_all_v7_mt3f_sqr_rms_moe_wf4_n8k2_silu_rope_rp_b80_ps2@model.ckpt",
        "args": list(_MOE_ARGS),
        "description": "Mixture of Experts with pitch shift (724MB)",
    },
}


class AdaptiveModeUnavailable(NotImplementedError, ImportError):
    """``transcribe(adaptive=True)`` needs time-stretching and onset analysis
    (librosa / pyrubberband), which mt3-infer does not depend on.  Also an
    ``ImportError``: what mt3-infer 0.2.0 raised when librosa was missing."""


def _checkpoint_components(key: str) -> Tuple[str, str]:
    spec = CHECKPOINT_CONFIGS[key]["checkpoint"]
    directory, _, filename = spec.partition("@")
    return directory, filename


def _infer_model_key(path: str) -> Optional[str]:
    """The variant whose experiment directory appears in ``path``.

    The anchor also matched file names by substring, so any ``*model.ckpt``
    became ``ymt3plus`` (specs/yourmt3.md §10 #16); only directories count
    here."""
    for key in CHECKPOINT_CONFIGS:
        directory, _ = _checkpoint_components(key)
        if directory and directory in path:
            return key
    return None


class YourMT3Adapter(MT3AdapterBase):
    """YourMT3 transcription adapter (13 instrument channels, drums included).

    Args:
        model_key: one of :data:`CHECKPOINT_CONFIGS` (default
            ``"yptf_moe_nops"``); unknown keys raise ``ModelNotFoundError``.
            Informational: the network is built from the checkpoint itself.
        verbose: print what is loaded (the anchor printed it always).
        num_threads, max_new_tokens, dtype: as for
            :class:`~mt3_infer.adapters.MRMT3Adapter` (``max_new_tokens``:
            tokens per channel, at most and by default 256).
        batch_size: segments per network batch (default 8, the anchor's;
            results do not depend on it).
    """

    _RECIPE = "yourmt3"
    _FAMILY = "yourmt3"
    SAMPLE_RATE = 16000
    SEGMENT_SAMPLES = 32767
    DEFAULT_BATCH_SIZE = 8
    MAX_GENERATION_LENGTH = 256
    NUM_CHANNELS = 13

    def __init__(self, model_key: Optional[str] = None, verbose: bool = False, *,
                 num_threads: Optional[int] = None, batch_size: Optional[int] = None,
                 max_new_tokens: Optional[int] = None, dtype: str = "float32",
                 max_memory_mb: Optional[int] = None):
        super().__init__(num_threads=num_threads, batch_size=batch_size,
                         max_new_tokens=max_new_tokens, dtype=dtype, max_memory_mb=max_memory_mb)
        self.verbose = bool(verbose)
        self._set_model_key(model_key)

    # -- variants -----------------------------------------------------------
    def _set_model_key(self, model_key: Optional[str]) -> None:
        key = model_key or DEFAULT_MODEL_KEY
        if key not in CHECKPOINT_CONFIGS:
            raise ModelNotFoundError(
                f"Unknown YourMT3 model key '{key}'. Available: {', '.join(CHECKPOINT_CONFIGS)}"
            )
        self.model_key = key
        self.config = copy.deepcopy(CHECKPOINT_CONFIGS[key])

    @classmethod
    def list_available_models(cls) -> dict:
        """``{model_key: description}`` of the five variants."""
        return {k: v["description"] for k, v in CHECKPOINT_CONFIGS.items()}

    # -- state ------------------------------------------------------------------
    @property
    def device_str(self) -> str:
        """The device the network runs on (``"cpu"`` before loading, as the anchor)."""
        return self._device or "cpu"

    # -- loading ----------------------------------------------------------------
    def _default_checkpoint(self) -> str:
        directory, filename = _checkpoint_components(self.model_key)
        tried = []
        if self.model_key == DEFAULT_MODEL_KEY:
            exported = registry.exported_model_path("yourmt3")
            tried.append(str(exported))
            if exported.is_file():
                return str(exported)
            default = registry.default_checkpoint_path("yourmt3")
        else:
            default = registry.model_dir("yourmt3") / directory / filename
        tried.append(str(default))
        if default.is_file():
            return str(default)
        lines = "\n".join(f"  {i + 1}. {p}" for i, p in enumerate(tried))
        raise CheckpointError(
            f"Checkpoint not found. Tried:\n{lines}\n"
            "Download it with mt3_infer.download_model('yourmt3') (or `mt3-infer download yourmt3`), "
            "or pass checkpoint_path."
        )

    def load_model(self, checkpoint_path: Union[None, str, os.PathLike] = None, device: str = "auto"):
        """Load the network from an exported file or the original ``last.ckpt``
        (file or its directory), exported once into ``<stem>.mt3i.pt`` beside
        it (needs torch).  ``None``: the registry copy under
        ``MT3_CHECKPOINT_DIR`` / ``./.mt3_checkpoints`` (or its export).

        ``device``: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.  The
        native load runs without the GIL.  A path inside another variant's
        experiment directory switches ``model_key`` (as the anchor)."""
        if checkpoint_path is None:
            checkpoint_path = self._default_checkpoint()
        path = os.fspath(checkpoint_path)
        key = _infer_model_key(str(Path(path).expanduser().absolute()))
        if self.verbose:
            print(f"Loading YourMT3 model: {CHECKPOINT_CONFIGS[key or self.model_key]['name']}")
            print(f"Checkpoint: {path}")
            print(f"Device: {device}")
        super().load_model(path, device=device)
        if key is not None and key != self.model_key:
            self._set_model_key(key)
        if self.verbose:
            print(f"Model loaded successfully! (device: {self.device_str})")

    # -- running ----------------------------------------------------------------
    def transcribe(self, audio, sr=16000, adaptive: bool = False, stretch_factors=None,
                   stretch_method: str = "auto", num_attempts: int = 1, return_all: bool = False, *,
                   batch_size=None, max_new_tokens=None, num_threads=None, progress=None,
                   max_memory_mb=None):
        """Transcribe ``audio`` (float32/float64, (n,) or (n, channels); int16/int32
        PCM also accepted) at rate ``sr`` into a ``mido.MidiFile`` — the file
        mt3-infer 0.2.0's YourMT3 adapter writes.

        ``batch_size``: segments per network batch (default 8);
        ``max_new_tokens``: tokens per channel and segment (default 256);
        ``num_threads``: CPU threads.  The GIL is released throughout; several
        threads may transcribe on one adapter at once.
        ``progress``: None (quiet), True (a "Generating MIDI" bar on a
        terminal's stderr) or ``callable(segments_done, segments_total,
        tokens_done)``; see :meth:`MT3AdapterBase.transcribe`.

        Adaptive mode (``adaptive=True``): the anchor measured onset density
        with librosa and re-transcribed time-stretched copies (librosa or
        pyrubberband), keeping the result with the most notes.  Those
        libraries are not dependencies of mt3-infer, so only the part that
        needs no stretching is supported: explicit ``stretch_factors`` that are
        all 1.0 run ``num_attempts`` transcriptions of the original audio and
        return the best (or, with ``return_all``, every ``(midi, note_count,
        1.0)``).  Anything else raises :class:`AdaptiveModeUnavailable` (a
        ``NotImplementedError`` and ``ImportError``): stretch the audio
        yourself and call ``transcribe`` per factor.
        """
        kw = dict(batch_size=batch_size, max_new_tokens=max_new_tokens, num_threads=num_threads,
                  progress=progress, max_memory_mb=max_memory_mb)
        if not adaptive:
            return super().transcribe(audio, sr, **kw)
        return self._adaptive(audio, sr, stretch_factors, stretch_method, num_attempts, return_all, kw)

    def _adaptive(self, audio, sr, stretch_factors, stretch_method, num_attempts, return_all, kw):
        if stretch_method not in ("auto", "librosa", "pyrubberband"):
            raise ValueError(
                f"stretch_method must be 'auto', 'librosa' or 'pyrubberband', got {stretch_method!r}"
            )
        if stretch_factors is None or any(float(f) != 1.0 for f in stretch_factors):
            raise AdaptiveModeUnavailable(
                "YourMT3 adaptive mode (onset-density analysis and time-stretching) needs librosa "
                "or pyrubberband, which mt3-infer does not use. Call transcribe(..., adaptive=False), "
                "or time-stretch the audio yourself and transcribe each version; "
                "adaptive=True with stretch_factors=[1.0] (explicit) is supported."
            )
        if isinstance(num_attempts, bool) or not isinstance(num_attempts, int):
            raise ValueError(f"num_attempts must be an int, got {num_attempts!r}")
        results: List[tuple] = []
        data = None
        for _ in stretch_factors:
            for _attempt in range(num_attempts):
                if data is None:  # deterministic: every attempt gives these bytes
                    data = self.transcribe_bytes(audio, sr, **kw)
                midi = midi_from_bytes(data)
                results.append((midi, count_notes(midi), 1.0))
        if not results:
            raise InferenceError("All adaptive transcription attempts failed")
        if return_all:
            return results
        return max(results, key=lambda r: r[1])[0]


__all__ = ["YourMT3Adapter", "CHECKPOINT_CONFIGS", "AdaptiveModeUnavailable"]

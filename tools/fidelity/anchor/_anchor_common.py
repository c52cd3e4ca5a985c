"""Shared helpers for the anchor tool kit (run with the anchor venv's python,
$MT3_ANCHOR_DIR/venv/bin/python, default /work/anchor/venv/bin/python).

Nothing here changes the anchor's behaviour; it only builds adapter objects
without a network where the anchor's decode/preprocess do not need one, and
records intermediate notes by wrapping (not replacing) anchor functions.
"""
import json
import os
import sys
import warnings

import numpy as np

# The anchor prints progress (YourMT3 loader, tqdm); keep stdout clean for callers
# that parse it: tools print their own one-line JSON summary at the end.

# transformers 4.45.2 + tokenizers 0.20.3 (--target overlay built by setup_anchor.sh next to the venv):
# $MT3_ANCHOR_TF445, else <anchor dir>/tf445 where the interpreter is <anchor dir>/venv/bin/python.
TF445_DIR = os.environ.get("MT3_ANCHOR_TF445") or os.path.normpath(
    os.path.join(os.path.dirname(sys.executable), "..", "..", "tf445"))
YMT3_TASK = "mc13_full_plus_256"
YMT3_BSZ = 8  # YourMT3Adapter.forward batch size


def note_to_dict_ns(n):
    """NoteSequence-lite note (MT3-PyTorch / MR-MT3)."""
    return {
        "pitch": int(n.pitch),
        "velocity": int(n.velocity),
        "start_time": float(n.start_time),
        "end_time": float(n.end_time),
        "program": int(n.program),
        "is_drum": bool(n.is_drum),
    }


def note_to_dict_ymt3(n):
    """YourMT3 Note dataclass."""
    return {
        "is_drum": bool(n.is_drum),
        "program": int(n.program),
        "onset": float(n.onset),
        "offset": float(n.offset),
        "pitch": int(n.pitch),
        "velocity": int(n.velocity),
    }


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def load_audio_npy(path):
    a = np.load(path)
    if a.dtype not in (np.float32, np.float64):
        raise SystemExit(f"audio must be float32/float64, got {a.dtype}")
    return a


def mono_like_base(audio):
    """What MT3Base.transcribe does before preprocess (stereo (n, ch) -> mean)."""
    if audio.ndim == 2:
        audio = np.mean(audio, axis=1).astype(audio.dtype)
    return audio


def make_mt3_pytorch_adapter_nomodel(auto_filter=True):
    """MT3PyTorchAdapter with everything decode()/preprocess() need, but no network."""
    from mt3_infer.adapters.mt3_pytorch import MT3PyTorchAdapter
    from mt3_infer.models.mt3_pytorch.contrib import vocabularies, note_sequences
    from mt3_infer.models.mt3_pytorch.contrib.spectrograms_torch import (
        SpectrogramProcessor, SpectrogramConfig)

    ad = MT3PyTorchAdapter(auto_filter=auto_filter)
    ad._spectrogram_processor = SpectrogramProcessor(SpectrogramConfig())
    vocab_config = vocabularies.VocabularyConfig(num_velocity_bins=1)
    ad._codec = vocabularies.build_codec(vocab_config)
    ad._vocab = vocabularies.vocabulary_from_codec(ad._codec)
    ad._encoding_spec = note_sequences.NoteEncodingWithTiesSpec
    ad._model_loaded = True  # decode/preprocess only check this flag
    return ad


def make_mr_mt3_adapter_nomodel():
    from mt3_infer.adapters.mr_mt3 import MRMT3Adapter
    ad = MRMT3Adapter()
    ad._initialize_vocab()
    ad._model_loaded = True
    return ad


class _YMT3Stub:
    """Just the attributes YourMT3Adapter.decode()/preprocess() read from self.model."""

    def __init__(self):
        from mt3_infer.models.yourmt3.utils.task_manager import TaskManager
        from mt3_infer.models.yourmt3.config.vocabulary import program_vocab_presets
        from mt3_infer.models.yourmt3.utils.utils import create_inverse_vocab
        # same as inference_loader: fresh TaskManager(task_name) with default max_shift_steps=206
        self.task_manager = TaskManager(task_name=YMT3_TASK)
        self.audio_cfg = {"sample_rate": 16000, "input_frames": 32767}
        # inference_loader: write_output_dir is None -> gm_ext_plus
        self.midi_output_vocab = program_vocab_presets["gm_ext_plus"]
        self.midi_output_inverse_vocab = create_inverse_vocab(self.midi_output_vocab)


def make_yourmt3_adapter_nomodel():
    from mt3_infer.adapters.yourmt3 import YourMT3Adapter
    ad = YourMT3Adapter()
    ad.model = _YMT3Stub()
    ad._model_loaded = True
    return ad


def ymt3_audio_cfg():
    """audio_cfg of the default YourMT3 variant (spec yourmt3 §1.5)."""
    from mt3_infer.models.yourmt3.config.config import audio_cfg as default_audio_cfg
    import copy
    cfg = copy.deepcopy(default_audio_cfg)
    cfg["codec"] = "spec"
    cfg["hop_length"] = 300
    return cfg


def quiet_stdout():
    """Redirect the anchor's prints (stdout) to stderr so stdout stays parseable."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return saved


def restore_stdout(saved):
    sys.stdout.flush()
    os.dup2(saved, 1)
    os.close(saved)


def summary(obj):
    print(json.dumps(obj))


def run_main(main):
    """Run a tool's main(); an anchor exception becomes {"ok": false, "error": ...} + exit 2."""
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:
        import traceback
        traceback.print_exc()  # full trace on stderr
        summary({"ok": False, "error": f"{type(e).__name__}: {e}"})
        sys.exit(2)

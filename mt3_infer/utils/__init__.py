"""mt3-infer 0.2.0's helper modules, under their old names.

Thin layers over the package's own owners: audio over :mod:`mt3_infer.audio`
and the C front end, MIDI over ``mido``, devices over the adapters' device
rule, downloads over :mod:`mt3_infer.download`.  Importing this package does
not import torch.
"""
from .audio import load_audio, normalize_audio, resample_audio, validate_audio
from .framework import check_jax_version, check_tensorflow_version, check_torch_version, get_device
from .midi import count_notes, get_midi_duration, midi_to_hash, validate_midi

__all__ = [
    "load_audio",
    "validate_audio",
    "normalize_audio",
    "resample_audio",
    "check_torch_version",
    "check_tensorflow_version",
    "check_jax_version",
    "get_device",
    "midi_to_hash",
    "validate_midi",
    "count_notes",
    "get_midi_duration",
]

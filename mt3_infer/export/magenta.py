"""Export of Magenta's original T5X checkpoints (``mt3`` and the ``ismir2021``
piano model) to the engine contract (``csrc/engine/engine.h``).

The network is the MT3 network of :mod:`.mt3` (``specs/magenta-t5x.md`` §4.2:
the flax original and the PyTorch port compute the same thing) with one
difference: the positional table is Magenta's ``FixedEmbed`` sinusoid,
10000^(-i/(d/2 - 1)) computed in float64 and rounded once to float32 (§4.1),
not the port's 10000^(-i/(d/2)).  So the weights are read with
:func:`.t5x.read_t5x`, rearranged into the port's layout
(:func:`.t5x.to_port_state`), built into :class:`.mt3.MT3Runtime`, and the
two position tables are overwritten with :func:`magenta_position_table`.

The artifact's family is ``"magenta"``: it needs Magenta's features, token
rules, decoding and MIDI writer (the ``magenta_mt3`` / ``magenta_piano``
recipes), so the MR-MT3 / MT3-PyTorch adapters refuse it and the Magenta
adapters refuse an ``mt3.pth`` export.  ``mt3_infer.json`` records the
input length (256 frames for ``mt3``, 512 for ``ismir2021``), the
vocabulary (1536 / 1664), ``positions: "magenta"`` and ``decoding:
"beam1"``.
"""
from __future__ import annotations

import os
from typing import Dict

import numpy as np

from ..exceptions import CheckpointError
from .common import require_torch, sha256_file
from .t5x import REAL_N_HEADS, mt3_config_for, read_t5x, resolve_t5x, to_port_state

torch = require_torch()

FAMILY = "magenta"
#: recipe per vocabulary size (spec §1, §6.1)
MODELS = {1536: {"model": "mt3", "recipe": "magenta_mt3"},
          1664: {"model": "ismir2021", "recipe": "magenta_piano"}}
MAX_POSITIONS = 2048  # FixedEmbed max_length


def magenta_position_table(n_positions: int, d_model: int) -> np.ndarray:
    """Magenta's ``sinusoid`` positional table (spec §4.1), rows 0..n-1,
    float32: with scale = -ln(10000) / (d/2 - 1) and w_i = exp(i * scale)
    in float64, PE[p, i] = f32(sin(p * w_i)) and PE[p, d/2 + i] =
    f32(cos(p * w_i)) (halves concatenated, not interleaved)."""
    half = d_model // 2
    if d_model % 2 or half < 2:
        raise CheckpointError(f"d_model {d_model}: Magenta's positional table needs an even width >= 4")
    scale = -np.log(10000.0) / (half - 1)
    w = np.exp(np.arange(half, dtype=np.float64) * scale)
    ang = np.arange(n_positions, dtype=np.int64)[:, None] * w[None, :]
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1).astype(np.float32)


def build_runtime(params: Dict[str, np.ndarray], n_heads: int = REAL_N_HEADS):
    """(MT3Runtime (eager, eval) with Magenta's positions, MT3Config) for the
    T5X ``params`` of :func:`read_t5x`."""
    from .mt3 import MT3, MT3Runtime

    cfg = mt3_config_for(params, n_heads)
    if cfg.vocab_size not in MODELS:
        raise CheckpointError(f"T5X checkpoint: vocabulary {cfg.vocab_size} is neither mt3's 1536 "
                              "nor ismir2021's 1664")
    ref = MT3(cfg)
    ref.load_state_dict(to_port_state(params, n_heads), strict=True)
    rt = MT3Runtime.from_reference(ref.eval())
    with torch.no_grad():
        rt.enc_pe.copy_(torch.from_numpy(magenta_position_table(cfg.max_frames, cfg.d_model)))
        rt.dec_pe.copy_(torch.from_numpy(magenta_position_table(cfg.max_len, cfg.d_model)))
    return rt.eval(), cfg


def magenta_meta(cfg, source_sha256: str) -> Dict:
    from .mt3 import mt3_meta

    info = MODELS[cfg.vocab_size]
    return mt3_meta(cfg, source_sha256, family=FAMILY, adapters=(info["recipe"],),
                    magenta_model=info["model"], positions="magenta", decoding="beam1")


def export_magenta(checkpoint: str, out: str, n_heads: int = REAL_N_HEADS) -> str:
    """Read the T5X checkpoint (its directory or its ``checkpoint`` file)
    strictly and write the TorchScript artifact ``out``; returns ``out``.
    ``source_sha256`` is the sha256 of the msgpack ``checkpoint`` file (it
    carries the optimizer step and the inline arrays, so it changes with
    every save); its size and mtime are recorded for the cache check."""
    from .mt3 import save_export, script_module

    _, ckpt_file = resolve_t5x(checkpoint)
    st = os.stat(ckpt_file) if os.path.isfile(ckpt_file) else None  # read_t5x reports a missing file
    rt, cfg = build_runtime(read_t5x(checkpoint), n_heads)
    return save_export(script_module(rt), magenta_meta(cfg, sha256_file(ckpt_file)), st, out)


def export_checkpoint(checkpoint: str, out: str) -> str:
    """The family's entry point (``registry.FAMILIES["magenta"]["exporter"]``)."""
    return export_magenta(checkpoint, out)


__all__ = ["FAMILY", "MODELS", "build_runtime", "export_checkpoint", "export_magenta",
           "magenta_meta", "magenta_position_table"]

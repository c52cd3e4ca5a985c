"""Model registry: ids, aliases, metadata, checkpoint layout and download sources.

The data are the ones mt3-infer 0.2.0 ships in ``config/checkpoints.yaml`` (the
``list_models()`` / ``get_model_info()`` dicts keep the same keys and value
types) plus the catalog values of its ``checkpoints.toml`` (``revision``,
``provenance``; used by :class:`mt3_infer.MT3Session`), held as Python data so
no YAML/TOML parser is needed.  Additions of this package live under
``checkpoint["files"]`` (one verified HTTPS file per artifact) and
``checkpoint["export"]`` (the cached TorchScript artifact).

Every function returns copies: mutating a returned dict never changes the
registry.

Checkpoint root: ``$MT3_CHECKPOINT_DIR`` (``~`` expanded) when set, else
``./.mt3_checkpoints`` under the current working directory, exactly like
mt3-infer 0.2.0.  Layout under the root::

    mr_mt3/mt3.pth
    mt3_pytorch/config.json, mt3_pytorch/mt3.pth
    yourmt3/mc13_256_g4_all_v7_mt3f_sqr_rms_moe_wf4_n8k2_silu_rope_rp_b36_nops/last.ckpt
    magenta_mt3/checkpoint, magenta_mt3/target.*/{.zarray,0.0}, magenta_mt3/mt3-infer-manifest.json
    magenta_piano/...  (the same T5X layout: the bucket folder gs://mt3/checkpoints/ismir2021/)

Magenta's two checkpoints have no fixed file list: their files are whatever
the bucket folder lists (``listing``), fetched from the GCS JSON API (name,
size, MD5 of each object) and saved as ``mt3-infer-manifest.json`` beside them.

Download hosts can be redirected (mirrors, tests) with ``MT3_HF_ENDPOINT``
(default ``https://huggingface.co``), ``MT3_GITHUB_MEDIA_ENDPOINT`` (default
``https://media.githubusercontent.com``) or, for every file at once,
``MT3_DOWNLOAD_MIRROR``: files are then fetched from
``<mirror>/<model id>/<file name>`` (for a Magenta model, the saved manifest
too: a copy of a downloaded model folder is a mirror).  ``MT3_GCS_ENDPOINT``
(default ``https://storage.googleapis.com``) redirects the bucket's API.
"""
from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from .exceptions import ModelNotFoundError

CHECKPOINT_DIR_ENV = "MT3_CHECKPOINT_DIR"
#: Base URL serving ``<mirror>/<model id>/<file name>`` instead of the upstream hosts.
MIRROR_ENV = "MT3_DOWNLOAD_MIRROR"
DEFAULT_CHECKPOINT_DIRNAME = ".mt3_checkpoints"

_MT3_SHA256 = "b8a3807ed265059abd25ad7f68142c06c35e8f6144dcaa45bd55946a3745398f"
_MT3_SIZE = 183_672_643
_YMT3_SHA256 = "ae38e415c79efd5592dcb9b658cdb99ddb11d4c4e1eaa364cab04a052473fc25"
_YMT3_SIZE = 561_544_628
_YMT3_EXPERIMENT = "mc13_256_g4_all_v7_mt3f_sqr_rms_moe_wf4_n8k2_silu_rope_rp_b36_nops"

#: Network families: how an original checkpoint is laid out and which module
#: exports it (``export_checkpoint(checkpoint, out)``; imports torch).  A
#: registry entry names its family in ``checkpoint["export"]["family"]``; a
#: new family is one row here plus its exporter module.
FAMILIES: Dict[str, Dict[str, Any]] = {
    "mt3": {
        "exporter": "mt3_infer.export.mt3",
        # the weights file inside a checkpoint folder (the anchor's layout: config.json + mt3.pth)
        "weights": ("mt3.pth",),
        "what": "mt3.pth (or its directory)",
    },
    "magenta": {
        "exporter": "mt3_infer.export.magenta",
        # a T5X checkpoint folder: the msgpack `checkpoint` file beside its target.* zarr folders
        "weights": ("checkpoint",),
        "what": "a Magenta T5X checkpoint folder (with its checkpoint file)",
    },
    "yourmt3": {
        "exporter": "mt3_infer.export.yourmt3",
        # the Lightning checkpoint, also under checkpoints/ (the Hugging Face Space's layout)
        "weights": ("last.ckpt", "checkpoints/last.ckpt"),
        "what": "the YourMT3 Lightning checkpoint (last.ckpt)",
    },
}

#: Google Cloud Storage (Magenta's public bucket ``gs://mt3``): object
#: listings from ``<endpoint>/storage/v1/b/<bucket>/o`` (JSON API) and objects
#: from ``<endpoint>/<bucket>/<object name>``.
GCS_ENDPOINT_ENV = "MT3_GCS_ENDPOINT"
GCS_ENDPOINT = "https://storage.googleapis.com"
#: The file list a listing-based model's download saves beside its files
#: (object names, sizes, MD5s as the server lists them); a mirror serves it
#: as ``<mirror>/<model id>/`` + this name.
MANIFEST_NAME = "mt3-infer-manifest.json"

#: Shown once, when a Magenta checkpoint is first downloaded (specs/magenta-t5x.md §7).
MAGENTA_LICENCE_NOTICE = (
    "Licence notice: Magenta publishes the MT3 checkpoints (gs://mt3/checkpoints) without a licence "
    "statement; the code of magenta/mt3 is Apache-2.0, the weights' terms are unknown (an open question "
    "upstream: magenta/mt3#177). The ismir2021 piano model was trained on MAESTRO v3 and mt3 on a mixture "
    "that includes it; Magenta distributes MAESTRO under a non-commercial licence (CC BY-NC-SA 4.0). "
    "Check these terms before any commercial use or redistribution of the weights or of what you make "
    "with them."
)

#: Folder of the networks shipped inside the package (no download).
BUNDLED_DIR = Path(__file__).resolve().parent / "models"
_SMALL_FILE = "mt3_small.mt3i.pt"


def _bundled_record(name: str) -> Dict[str, Any]:
    """``models/<name>.json``: sha256, size and training record of a shipped
    network (written by ``tools/train_small.py --ship``); {} when absent."""
    import json

    try:
        with open(BUNDLED_DIR / f"{name}.json", "r", encoding="utf-8") as fh:
            rec = json.load(fh)
        return rec if isinstance(rec, dict) else {}
    except (OSError, ValueError):
        return {}


_SMALL = _bundled_record("mt3_small")
_SMALL_SHA256 = str(_SMALL.get("sha256", ""))
_SMALL_SIZE = int(_SMALL.get("size", 0))

# kunato/mt3-pytorch pretrained/config.json (T5 hyper-parameters); written next
# to mt3.pth so the directory has the layout mt3-infer 0.2.0 expects.
MT3_PYTORCH_CONFIG = {
    "architectures": ["T5ForConditionalGeneration"],
    "d_ff": 1024,
    "d_kv": 64,
    "d_model": 512,
    "decoder_start_token_id": 0,
    "dropout_rate": 0.1,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "unk_token_id": 2,
    "feed_forward_proj": "gated-gelu",
    "initializer_factor": 1.0,
    "is_encoder_decoder": True,
    "layer_norm_epsilon": 1e-06,
    "model_type": "t5",
    "num_heads": 6,
    "num_decoder_layers": 8,
    "num_layers": 8,
    "output_past": True,
    "tie_word_embeddings": False,
    "vocab_size": 1536,
}

def _magenta_entry(folder: str, *, name: str, description: str, adapter: str, size_mb: float,
                   metadata: Dict[str, Any], best_for: List[str]) -> Dict[str, Any]:
    """Registry entry of one of Magenta's T5X checkpoints, ``gs://mt3/checkpoints/<folder>/``:
    no fixed file list (the bucket folder's listing, saved as MANIFEST_NAME), family "magenta"."""
    mid = "magenta_mt3" if folder == "mt3" else "magenta_piano"
    return {
        "name": name,
        "description": description,
        "framework": "pytorch",  # what runs it: the export, on libtorch (the checkpoint format is "t5x")
        "adapter_class": f"mt3_infer.adapters.magenta.{adapter}",
        "checkpoint": {
            "path": f".mt3_checkpoints/{mid}",
            "size_mb": size_mb,
            "format": "t5x",
            "download": {"source_type": "gcs", "source_url": f"gs://mt3/checkpoints/{folder}/", "sha256": None},
            "listing": {"host": "gcs", "bucket": "mt3", "prefix": f"checkpoints/{folder}/"},
            "files": [],
            "licence": MAGENTA_LICENCE_NOTICE,
            "export": {"family": "magenta", "file": f"{mid}.mt3i.pt"},
        },
        "metadata": {
            "max_seq_len": 1024,
            "sample_rate": 16000,
            "decoding": "beam1",
            **metadata,
            # not measured: the real checkpoint has not run here (0.0 = unknown, a float as in every entry)
            "performance": {"speed_x_realtime": 0.0, "peak_gpu_memory_mb": None, "notes_detected": None},
        },
        "best_for": list(best_for),
    }


# ---------------------------------------------------------------------------
# The registry (insertion order = list_models() order).
# ---------------------------------------------------------------------------
_MODELS: Dict[str, Dict[str, Any]] = {
    "mr_mt3": {
        "name": "MR-MT3",
        "description": "Multi-instrument MT3 variant optimized for speed (57x real-time)",
        "framework": "pytorch",
        "adapter_class": "mt3_infer.adapters.mr_mt3.MRMT3Adapter",
        "checkpoint": {
            "path": ".mt3_checkpoints/mr_mt3/mt3.pth",
            "size_mb": 176.0,
            "format": "pytorch",
            "download": {
                "source_type": "url",
                "source_url": "https://huggingface.co/gudgud1014/MR-MT3/resolve/main/mt3.pth",
                "sha256": _MT3_SHA256,
            },
            # additions of this package
            "files": [
                {
                    "name": "mt3.pth",
                    "host": "hf",
                    "url": "https://huggingface.co/gudgud1014/MR-MT3/resolve/main/mt3.pth",
                    "sha256": _MT3_SHA256,
                    "size": _MT3_SIZE,
                },
            ],
            "export": {"family": "mt3", "file": "mr_mt3.mt3i.pt"},
        },
        "metadata": {
            "vocab_size": 388,
            "max_seq_len": 1024,
            "sample_rate": 16000,
            "verified_on": "2025-10-06",
            "performance": {
                "speed_x_realtime": 57.0,
                "peak_gpu_memory_mb": 269,
                "notes_detected": 116,
            },
        },
        "best_for": [
            "Real-time applications",
            "Low-latency requirements",
            "Embedded systems",
            "Batch processing",
        ],
    },
    "mt3_pytorch": {
        "name": "MT3-PyTorch",
        "description": "Official MT3 architecture in PyTorch (best accuracy, 12x real-time)",
        "framework": "pytorch",
        "adapter_class": "mt3_infer.adapters.mt3_pytorch.MT3PyTorchAdapter",
        "checkpoint": {
            "path": ".mt3_checkpoints/mt3_pytorch",
            "size_mb": 176.0,
            "format": "pytorch",
            "download": {
                "source_type": "git_lfs",
                "source_url": "https://github.com/kunato/mt3-pytorch",
                "branch": "master",
                "depth": 1,
                "target_path": "pretrained",
                "sha256": _MT3_SHA256,
            },
            "files": [
                {
                    "name": "mt3.pth",
                    "host": "github_media",
                    "url": "https://media.githubusercontent.com/media/kunato/mt3-pytorch/master/pretrained/mt3.pth",
                    "sha256": _MT3_SHA256,
                    "size": _MT3_SIZE,
                },
            ],
            "generated_files": {"config.json": MT3_PYTORCH_CONFIG},
            "export": {"family": "mt3", "file": "mt3_pytorch.mt3i.pt"},
        },
        "metadata": {
            "vocab_size": 1536,
            "max_seq_len": 1024,
            "sample_rate": 16000,
            "verified_on": "2025-10-06",
            "performance": {
                "speed_x_realtime": 12.37,
                "peak_gpu_memory_mb": 208,
                "notes_detected": 147,
            },
        },
        "best_for": [
            "Studio music production",
            "Accuracy-critical applications",
            "Multi-instrument separation",
            "General-purpose transcription",
            "Research and benchmarking (official baseline)",
        ],
    },
    "yourmt3": {
        "name": "YourMT3",
        "description": "Advanced multi-task MT3 with 8-stem separation (Perceiver-TF + MoE)",
        "framework": "pytorch",
        "adapter_class": "mt3_infer.adapters.yourmt3.YourMT3Adapter",
        "checkpoint": {
            "path": f".mt3_checkpoints/yourmt3/{_YMT3_EXPERIMENT}/last.ckpt",
            "size_mb": 536.0,
            "format": "pytorch_lightning",
            "download": {
                "source_type": "git_lfs",
                "source_url": "https://huggingface.co/spaces/mimbres/YourMT3",
                "sha256": _YMT3_SHA256,
                "branch": "main",
                "depth": 1,
                "target_path": f"amt/logs/2024/{_YMT3_EXPERIMENT}/checkpoints/last.ckpt",
            },
            "files": [
                {
                    "name": "last.ckpt",
                    "host": "hf",
                    "url": (
                        "https://huggingface.co/spaces/mimbres/YourMT3/resolve/main/"
                        f"amt/logs/2024/{_YMT3_EXPERIMENT}/checkpoints/last.ckpt"
                    ),
                    "sha256": _YMT3_SHA256,
                    "size": _YMT3_SIZE,
                },
            ],
            "export": {"family": "yourmt3", "file": "yourmt3.mt3i.pt"},
        },
        "metadata": {
            "model_variant": "YPTF.MoE+Multi (noPS)",
            "vocab_size": 1536,
            "max_seq_len": 1024,
            "sample_rate": 16000,
            "num_stems": 8,
            "encoder": "Perceiver-TF",
            "decoder": "Multi-T5 (26 layers)",
            "architecture": "MoE (8 experts, top-k=2)",
            "verified_on": "2025-10-07",
            "performance": {
                "speed_x_realtime": 15.0,
                "peak_gpu_memory_mb": 400,
                "notes_detected": None,
            },
        },
        "best_for": [
            "Multi-instrument separation (8 stems)",
            "Detailed music transcription",
            "Multi-task scenarios",
            "Research on advanced MT3 architectures",
        ],
    },
    "mt3_small": {
        "name": "MT3-Small (bundled)",
        "description": "Small MT3 network shipped inside the package: transcribes offline, no download",
        "framework": "pytorch",
        "adapter_class": "mt3_infer.adapters.mt3_small.MT3SmallAdapter",
        "checkpoint": {
            "path": str(BUNDLED_DIR / _SMALL_FILE),
            "size_mb": round(_SMALL_SIZE / 2**20, 1),
            "format": "torchscript",
            "bundled": True,
            "download": {"source_type": "bundled", "source_url": None, "sha256": _SMALL_SHA256},
            "files": [
                {"name": _SMALL_FILE, "host": "bundled", "url": None, "sha256": _SMALL_SHA256,
                 "size": _SMALL_SIZE, "bundled": True},
            ],
            "export": {"family": "mt3", "file": _SMALL_FILE},
        },
        "metadata": {
            "vocab_size": 1536,
            "max_seq_len": 1024,
            "sample_rate": 16000,
            "training_data": "synthetic FluidSynth renders (tools/synth, tools/train_small.py)",
            # CPU real-time factor of benchmarks/bench_accuracy.py (2 threads), from the record
            "performance": {
                "speed_x_realtime": float(_SMALL.get("speed_x_realtime", 0.0)),
                "peak_gpu_memory_mb": None,
                "notes_detected": None,
            },
            "training": _SMALL.get("training"),
        },
        "best_for": [
            "Offline and air-gapped machines (nothing to download)",
            "Trying the package out of the box (an early checkpoint: low accuracy, see the README)",
        ],
    },
    "magenta_mt3": _magenta_entry(
        "mt3", name="Magenta MT3 (T5X)",
        description="Magenta's multi-instrument MT3 checkpoint run as its Colab does (beam-1 decoding), without JAX",
        adapter="MagentaMT3Adapter", size_mb=171.6,
        metadata={"vocab_size": 1536, "input_frames": 256,
                  "license": "unknown (no statement upstream; magenta/mt3#177)"},
        best_for=["Reproducing Magenta's Colab results without JAX/TensorFlow",
                  "Multi-instrument transcription (the original MT3 weights)"]),
    "magenta_piano": _magenta_entry(
        "ismir2021", name="Magenta piano (T5X)",
        description="Magenta's piano transcription model with velocities (127 bins, 4.096 s segments), without JAX",
        adapter="MagentaPianoAdapter", size_mb=172.0,
        metadata={"vocab_size": 1664, "input_frames": 512, "velocity_bins": 127,
                  "license": "unknown (no statement upstream; magenta/mt3#177); trained on MAESTRO v3 "
                             "(non-commercial)"},
        best_for=["Solo piano with note velocities",
                  "Reproducing Magenta's ismir2021 results without JAX/TensorFlow"]),
}

DEFAULT_MODEL = "mt3_pytorch"

_ALIASES: Dict[str, str] = {
    "default": "mt3_pytorch",
    "fast": "mr_mt3",
    "accurate": "mt3_pytorch",
    "multitask": "yourmt3",
    "official": "mt3_pytorch",
    "baseline": "mt3_pytorch",
    "offline": "mt3_small",
    "small": "mt3_small",
    "magenta": "magenta_mt3",
    "colab": "magenta_mt3",
    "ismir2021": "magenta_piano",
    "piano": "magenta_piano",
}

# mt3-infer 0.2.0 checkpoints.toml catalog values (MT3Session.cache_info()).
_CATALOG: Dict[str, Dict[str, str]] = {
    "mr_mt3": {
        "backend": "pytorch",
        "url": "https://huggingface.co/gudgud1014/MR-MT3/resolve/main/mt3.pth",
        "revision": "main",
        "provenance": "Hugging Face gudgud1014/MR-MT3",
    },
    "mt3_pytorch": {
        "backend": "pytorch",
        "url": "https://github.com/kunato/mt3-pytorch",
        "revision": "master",
        "provenance": "GitHub kunato/mt3-pytorch (git-lfs)",
    },
    "yourmt3": {
        "backend": "pytorch",
        "url": "https://huggingface.co/spaces/mimbres/YourMT3",
        "revision": "main",
        "provenance": "Hugging Face mimbres/YourMT3 (git-lfs)",
    },
    "mt3_small": {
        "backend": "pytorch",
        "url": "bundled",
        "revision": "bundled",
        "provenance": "mt3-infer's own network (tools/train_small.py), shipped inside the package",
    },
    "magenta_mt3": {
        "backend": "t5x",
        "url": "gs://mt3/checkpoints/mt3/",
        "revision": "gcs",
        "provenance": "Magenta's public bucket gs://mt3 (the Colab's checkpoint; licence unknown)",
    },
    "magenta_piano": {
        "backend": "t5x",
        "url": "gs://mt3/checkpoints/ismir2021/",
        "revision": "gcs",
        "provenance": "Magenta's public bucket gs://mt3 (ismir2021; licence unknown, MAESTRO-trained)",
    },
}

_HOST_DEFAULTS = {
    "hf": ("MT3_HF_ENDPOINT", "https://huggingface.co"),
    "github_media": ("MT3_GITHUB_MEDIA_ENDPOINT", "https://media.githubusercontent.com"),
}


# ---------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------
def model_ids() -> List[str]:
    """Canonical model ids, in registry order."""
    return list(_MODELS)


def aliases() -> Dict[str, str]:
    """A copy of the alias table (alias -> canonical id)."""
    return dict(_ALIASES)


def not_found_message(model: Any) -> str:
    return (
        f"Model '{model}' not found in registry.\n"
        f"Available models: {', '.join(_MODELS)}\n"
        f"Available aliases: {', '.join(_ALIASES)}"
    )


def resolve_model_name(model: Any) -> str:
    """Alias table first, then canonical ids, then the top-level default key.

    Case-sensitive, no trimming (as mt3-infer 0.2.0).  Unknown names raise
    :class:`ModelNotFoundError` listing the models and aliases.
    """
    if isinstance(model, str):
        if model in _ALIASES:
            return _ALIASES[model]
        if model in _MODELS:
            return model
        if model == "default":
            return DEFAULT_MODEL
    raise ModelNotFoundError(not_found_message(model))


def list_models() -> Dict[str, Dict[str, Any]]:
    """Copies of every model's registry dict, keyed by canonical id."""
    return copy.deepcopy(_MODELS)


def get_model_info(model: str) -> Dict[str, Any]:
    """A copy of one model's registry dict (ids or aliases)."""
    return copy.deepcopy(_MODELS[resolve_model_name(model)])


def _entry(model_id: str) -> Dict[str, Any]:
    """Internal read-only access (no copy); callers must not mutate."""
    return _MODELS[model_id]


def catalog_profile(model: str) -> Dict[str, Any]:
    """The 0.2.0 TOML catalog profile ``{"id", "backend", "path", "url", "sha256", "revision", "provenance"}``."""
    mid = resolve_model_name(model)
    prof = dict(_CATALOG[mid])
    prof["id"] = mid
    prof["path"] = _MODELS[mid]["checkpoint"]["path"]
    prof["sha256"] = _MODELS[mid]["checkpoint"]["download"]["sha256"]
    return prof


def cache_key(model: str, *, backend: Optional[str] = None, revision: Optional[str] = None,
              checksum: Optional[str] = None) -> str:
    """First 16 hex digits of sha256("mt3-infer|id|backend|revision|sha256") (0.2.0 formula)."""
    prof = catalog_profile(model)
    parts = [
        "mt3-infer",
        prof["id"],
        backend or prof["backend"],
        revision or prof["revision"],
        checksum or prof["sha256"] or "",
    ]
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------
def checkpoint_root() -> Path:
    """``$MT3_CHECKPOINT_DIR`` (``~`` expanded) or ``<cwd>/.mt3_checkpoints``."""
    env = os.environ.get(CHECKPOINT_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.cwd() / DEFAULT_CHECKPOINT_DIRNAME


def _reroot(rel: str) -> Path:
    p = Path(rel)
    if p.is_absolute():
        return p
    env = os.environ.get(CHECKPOINT_DIR_ENV)
    if env:
        base = Path(env).expanduser()
        try:
            return base / p.relative_to(DEFAULT_CHECKPOINT_DIRNAME)
        except ValueError:
            return base / p
    return Path.cwd() / p


def is_bundled(model: str) -> bool:
    """True for a network shipped inside the package (never downloaded)."""
    return bool(_MODELS[resolve_model_name(model)]["checkpoint"].get("bundled"))


def bundled_models() -> List[str]:
    """Ids of the networks shipped inside the package."""
    return [m for m in _MODELS if _MODELS[m]["checkpoint"].get("bundled")]


def default_checkpoint_path(model: str) -> Path:
    """Where the registry checkpoint of ``model`` lives (nothing is created);
    for a bundled model, its file inside the installed package."""
    mid = resolve_model_name(model)
    if is_bundled(mid):
        return Path(_MODELS[mid]["checkpoint"]["path"])
    return _reroot(_MODELS[mid]["checkpoint"]["path"])


def model_dir(model: str) -> Path:
    """``<root>/<model id>``: the folder holding the model's files."""
    return checkpoint_root() / resolve_model_name(model)


def artifact_dir(model: str) -> Path:
    """Folder where the registry artifact's files are stored."""
    mid = resolve_model_name(model)
    p = default_checkpoint_path(mid)
    ck = _MODELS[mid]["checkpoint"]
    return p if ck.get("generated_files") or ck.get("listing") else p.parent


def family(model: str) -> str:
    """The network family of a registry model (a key of :data:`FAMILIES`)."""
    return _MODELS[resolve_model_name(model)]["checkpoint"]["export"]["family"]


def known_sha256(model: str, path: Path) -> Optional[str]:
    """The recorded sha256 of ``path`` when it is one of the registry files of ``model``."""
    mid = resolve_model_name(model)
    folder = artifact_dir(mid)
    for f in _MODELS[mid]["checkpoint"]["files"]:
        if Path(path).absolute() == (folder / f["name"]).absolute():
            return f["sha256"]
    return None


def exported_model_path(model: str) -> Path:
    """Path of the cached TorchScript export of the registry checkpoint."""
    mid = resolve_model_name(model)
    if is_bundled(mid):  # shipped already exported
        return default_checkpoint_path(mid)
    return model_dir(mid) / _MODELS[mid]["checkpoint"]["export"]["file"]


def resolve_checkpoint_path(model: str, checkpoint_path: Any = None) -> Optional[Path]:
    """0.2.0 ``checkpoint_catalog.resolve_checkpoint_path``: an explicit path
    (``~`` expanded) wins; else the registry path under ``MT3_CHECKPOINT_DIR``
    or the CWD.  Never creates anything."""
    mid = resolve_model_name(model)
    if checkpoint_path is not None:
        return Path(os.fspath(checkpoint_path)).expanduser()
    return default_checkpoint_path(mid)


def file_url(model: str, spec: Dict[str, Any]) -> Optional[str]:
    """Download URL of one registry file, after mirror / host overrides
    (None for a file shipped inside the package)."""
    mid = resolve_model_name(model)
    if spec.get("bundled"):
        return None
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return f"{mirror.rstrip('/')}/{mid}/{spec['name']}"
    url = spec["url"]
    host = spec.get("host")
    if host in _HOST_DEFAULTS:
        env, default = _HOST_DEFAULTS[host]
        override = os.environ.get(env)
        if override and url.startswith(default):
            url = override.rstrip("/") + url[len(default):]
    return url


def inside_root(path: Path) -> Path:
    """``path`` itself when it lies inside the checkpoint root once every
    symlink is followed, else CheckpointError.  Downloads write only through
    this: a link inside the root pointing elsewhere (``mr_mt3 -> /etc``), a
    ``..`` component or an absolute registry path cannot make them write
    outside it.  The root itself may be a link (it is resolved first)."""
    from .exceptions import CheckpointError

    root = checkpoint_root().resolve()
    real = Path(path).resolve()  # follows links of the file and of every folder above it
    try:
        real.relative_to(root)
    except ValueError:
        raise CheckpointError(
            f"refusing to write {path}: it resolves to {real}, outside the checkpoint root {root} "
            f"(a symbolic link, or a path leaving the root). Remove the link, or point "
            f"{CHECKPOINT_DIR_ENV} at the folder you want the files in."
        ) from None
    return Path(path)


# ---------------------------------------------------------------------------
# Listing-based models (a bucket prefix instead of a fixed file list)
# ---------------------------------------------------------------------------
def listing(model: str) -> Optional[Dict[str, str]]:
    """``{"host", "bucket", "prefix"}`` of a model whose files are a bucket
    folder (Magenta's checkpoints), else None."""
    spec = _MODELS[resolve_model_name(model)]["checkpoint"].get("listing")
    return dict(spec) if spec else None


def gcs_endpoint() -> str:
    """``$MT3_GCS_ENDPOINT`` (a mirror of the GCS API, tests) or Google's."""
    return (os.environ.get(GCS_ENDPOINT_ENV) or GCS_ENDPOINT).rstrip("/")


def listing_url(model: str, page_token: Optional[str] = None) -> str:
    """The first (or ``page_token``'s) page of the model's object listing;
    with ``$MT3_DOWNLOAD_MIRROR``, the mirror's copy of the saved manifest."""
    from urllib.parse import urlencode

    mid = resolve_model_name(model)
    spec = listing(mid)
    if spec is None:
        raise ValueError(f"model {mid!r} has a fixed file list, not a bucket listing")
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return f"{mirror.rstrip('/')}/{mid}/{MANIFEST_NAME}"
    query = {"prefix": spec["prefix"], "maxResults": "1000"}
    if page_token:
        query["pageToken"] = page_token
    return f"{gcs_endpoint()}/storage/v1/b/{spec['bucket']}/o?{urlencode(query)}"


def object_url(model: str, name: str) -> str:
    """URL of one object of a listing-based model (``name`` relative to the
    model's prefix, ``/``-separated), after the mirror / endpoint overrides."""
    from urllib.parse import quote

    mid = resolve_model_name(model)
    spec = listing(mid)
    if spec is None:
        raise ValueError(f"model {mid!r} has a fixed file list, not a bucket listing")
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return f"{mirror.rstrip('/')}/{mid}/{quote(name)}"
    return f"{gcs_endpoint()}/{spec['bucket']}/{quote(spec['prefix'] + name)}"


def manifest_path(model: str) -> Path:
    """Where a listing-based model's saved manifest lives (in its folder)."""
    return artifact_dir(model) / MANIFEST_NAME


def read_manifest(model: str) -> Optional[Dict[str, Any]]:
    """The saved manifest of a listing-based model, or None when absent or
    not a manifest of this model (then the listing is fetched again)."""
    import json

    try:
        with open(manifest_path(model), "r", encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("model") != resolve_model_name(model):
        return None
    objs = doc.get("objects")
    if not isinstance(objs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) and isinstance(o.get("size"), int)
            for o in objs):
        return None
    return doc


def files_for(model: str) -> List[Dict[str, Any]]:
    """Copies of the downloadable files of ``model`` with resolved URL and
    target path.  A listing-based model's files are those of its saved
    manifest (none before the first download); they carry ``md5`` (hex, the
    server's) instead of ``sha256`` (None)."""
    mid = resolve_model_name(model)
    folder = artifact_dir(mid)
    if listing(mid) is not None:
        doc = read_manifest(mid)
        return [{"name": o["name"], "host": "gcs", "url": object_url(mid, o["name"]),
                 "path": folder / o["name"], "size": o["size"], "sha256": None, "md5": o.get("md5"),
                 "crc32c": o.get("crc32c")} for o in (doc or {}).get("objects", [])]
    out = []
    for spec in _MODELS[mid]["checkpoint"]["files"]:
        item = dict(spec)
        item["url"] = file_url(mid, spec)
        item["path"] = folder / spec["name"]
        out.append(item)
    return out


__all__ = [
    "FAMILIES",
    "GCS_ENDPOINT_ENV",
    "MANIFEST_NAME",
    "gcs_endpoint",
    "listing",
    "listing_url",
    "manifest_path",
    "object_url",
    "read_manifest",
    "inside_root",
    "family",
    "known_sha256",
    "CHECKPOINT_DIR_ENV",
    "MIRROR_ENV",
    "DEFAULT_MODEL",
    "aliases",
    "BUNDLED_DIR",
    "artifact_dir",
    "bundled_models",
    "cache_key",
    "catalog_profile",
    "checkpoint_root",
    "default_checkpoint_path",
    "exported_model_path",
    "file_url",
    "files_for",
    "get_model_info",
    "is_bundled",
    "list_models",
    "model_dir",
    "model_ids",
    "resolve_checkpoint_path",
    "resolve_model_name",
]

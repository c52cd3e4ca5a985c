"""Helpers shared by every exporter (MT3 and YourMT3): checkpoint reading,
strict key/shape checks, the ``mt3_infer.json`` metadata and atomic saving.

The artifact contract (format_version 1) is documented in
``csrc/engine/engine.h``; :func:`build_meta` fills and validates it.

Only this sub-package imports torch.  Functions that do not need torch
(:func:`sha256_file`, :func:`read_artifact_meta`) import nothing heavy.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import warnings
import zipfile
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

from ..exceptions import CheckpointError, FrameworkError

FORMAT_VERSION = 1
EXPORTER_VERSION = "mt3-infer-export/6"  # 2: step_groups (continuous batching); 3: encoder_kib_per_segment; 4: fused attention below fp32; 5: step_top2 (beam-1 decoding); 6: decoder attention through the engine's mt3::attend_rows
META_NAME = "mt3_infer.json"

# Keys every artifact must carry, with their Python types.
_META_REQUIRED = {
    "format_version": int,
    "family": str,
    "frames": int,
    "feature_bins": int,
    "channels": int,
    "n_layers": int,
    "n_heads": int,
    "d_kv": int,
    "memory_len": int,
    "max_len": int,
    "vocab_size": int,
    "start_id": int,
    "eos_id": int,
    "pad_id": int,
    "max_new_tokens": int,
    "check_first_eos": bool,
    "source_sha256": str,
    "exporter_version": str,
}


def require_torch():
    """Import torch or raise FrameworkError with the fix."""
    try:
        import torch  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        from .._engine import torch_install_hint

        raise FrameworkError(
            "exporting a checkpoint needs PyTorch (torch is not importable: "
            f"{exc}). Install it with: {torch_install_hint()}"
        ) from exc
    return torch


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _torch_load_detail(exc: BaseException) -> str:
    """The informative part of a torch.load failure, without torch's advice to
    retry with ``weights_only=False`` (never right for these checkpoints)."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].split("Check the documentation", 1)[0]
    elif "weights_only" in text:
        text = ""
    text = " ".join(text.split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_torch_file(path: str, what: str = "checkpoint"):
    """``torch.load(path, map_location='cpu', weights_only=True)`` with every
    failure mapped to :class:`CheckpointError` (missing, truncated, foreign):
    our own message (what was found, the expected format, how to get a good
    copy) and none of torch's warnings or its ``weights_only=False`` advice."""
    torch = require_torch()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{what} not found: {path!r}")
    if os.path.isdir(path):
        raise CheckpointError(f"{what} path is a directory, expected a file: {path!r}")
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(f"{what} {path!r} is empty (0 bytes); re-download it")
    with open(path, "rb") as f:
        head = f.read(4)
    fix = ("Re-download it: `mt3-infer download <model> --force` for a registry model (or delete "
           "the file and load again), else fetch the original checkpoint again.")
    expected = ("expected a torch.save() file: a zip archive (starting with b'PK\\x03\\x04') holding "
                "data.pkl and the tensor data, as the upstream checkpoints are")
    # zip (torch >= 1.6) or the legacy pickle format (starts with PROTO 0x80)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(
            f"{what} {path!r} ({size:,} bytes) is not a valid PyTorch checkpoint (corrupt, "
            f"truncated or another format): it starts with {head!r}; {expected}. {fix}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            ok = True
        except Exception as exc:  # zip errors, unpickling errors, EOF, ...
            ok, error = False, exc
    if not ok:
        raise CheckpointError(
            f"{what} {path!r} ({size:,} bytes) is not a valid PyTorch checkpoint (corrupt, "
            f"truncated or holding objects other than tensors): {_torch_load_detail(error)}; "
            f"{expected}. {fix}"
        ) from error
    for w in caught:  # a good file: pass torch's warnings on unchanged
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return state


def check_state_dict(
    state: Mapping,
    manifest: Mapping[str, Tuple[int, ...]],
    what: str = "checkpoint",
    source: str = "",
) -> None:
    """Raise CheckpointError unless ``state`` has exactly the manifest's keys,
    each a floating tensor of the listed shape.  The message lists every
    missing key, unexpected key and shape mismatch (first 20 of each)."""
    torch = require_torch()
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{what} {source!r} does not hold a state dict (got {type(state).__name__})"
        )
    missing = [k for k in manifest if k not in state]
    unexpected = [k for k in state if k not in manifest]
    mismatched = []
    for k, shape in manifest.items():
        if k not in state:
            continue
        v = state[k]
        if not isinstance(v, torch.Tensor):
            mismatched.append(f"{k}: not a tensor ({type(v).__name__})")
        elif tuple(v.shape) != tuple(shape):
            mismatched.append(f"{k}: expected {list(shape)}, got {list(v.shape)}")
        elif not v.is_floating_point():
            mismatched.append(f"{k}: expected a float tensor, got {v.dtype}")
    if missing or unexpected or mismatched:
        parts = []

        def listing(title, items):
            shown = ", ".join(items[:20])
            more = f" (+{len(items) - 20} more)" if len(items) > 20 else ""
            parts.append(f"{len(items)} {title}: {shown}{more}")

        if missing:
            listing("missing keys", missing)
        if unexpected:
            listing("unexpected keys", [str(k) for k in unexpected])
        if mismatched:
            listing("shape/type mismatches", mismatched)
        raise CheckpointError(
            f"{what} {source!r} does not match the expected layout "
            f"({len(manifest)} keys): " + "; ".join(parts)
        )


def build_meta(
    *,
    family: str,
    frames: int,
    feature_bins: int,
    channels: int,
    n_layers: int,
    n_heads: int,
    d_kv: int,
    memory_len: int,
    max_len: int,
    vocab_size: int,
    max_new_tokens: int,
    check_first_eos: bool,
    source_sha256: str,
    start_id: int = 0,
    eos_id: int = 1,
    pad_id: int = 0,
    **extras,
) -> Dict:
    """The ``mt3_infer.json`` dict of engine.h's contract, validated."""
    meta = {
        "format_version": FORMAT_VERSION,
        "family": family,
        "frames": int(frames),
        "feature_bins": int(feature_bins),
        "channels": int(channels),
        "n_layers": int(n_layers),
        "n_heads": int(n_heads),
        "d_kv": int(d_kv),
        "memory_len": int(memory_len),
        "max_len": int(max_len),
        "vocab_size": int(vocab_size),
        "start_id": int(start_id),
        "eos_id": int(eos_id),
        "pad_id": int(pad_id),
        "max_new_tokens": int(max_new_tokens),
        "check_first_eos": bool(check_first_eos),
        "source_sha256": str(source_sha256),
        "exporter_version": EXPORTER_VERSION,
    }
    for k, v in extras.items():
        if k in meta:
            raise ValueError(f"meta extra {k!r} collides with a contract key")
        meta[k] = v
    validate_meta(meta)
    return meta


def validate_meta(meta: Mapping) -> None:
    """Raise CheckpointError when ``meta`` breaks the format_version 1 contract."""
    if not isinstance(meta, Mapping):
        raise CheckpointError("mt3_infer.json is not a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"exported model has format_version {meta.get('format_version')!r}; this "
            f"mt3-infer reads version {FORMAT_VERSION}. Re-export it with `mt3-infer export`."
        )
    for k, typ in _META_REQUIRED.items():
        if k not in meta:
            raise CheckpointError(f"mt3_infer.json lacks the key {k!r}")
        v = meta[k]
        if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise CheckpointError(f"mt3_infer.json: {k!r} must be an integer, got {v!r}")
        if typ is not int and not isinstance(v, typ):
            raise CheckpointError(f"mt3_infer.json: {k!r} must be {typ.__name__}, got {v!r}")
    for k in ("frames", "feature_bins", "channels", "n_layers", "n_heads", "d_kv",
              "memory_len", "max_len", "vocab_size", "max_new_tokens"):
        if meta[k] <= 0:
            raise CheckpointError(f"mt3_infer.json: {k!r} must be positive, got {meta[k]!r}")
    if meta["max_new_tokens"] > meta["max_len"]:
        raise CheckpointError("mt3_infer.json: max_new_tokens exceeds max_len")
    for k in ("start_id", "eos_id", "pad_id"):
        if not 0 <= meta[k] < meta["vocab_size"]:
            raise CheckpointError(f"mt3_infer.json: {k!r} outside the vocabulary")


def meta_json(meta: Mapping) -> str:
    """Canonical JSON text of the metadata (sorted keys, ASCII)."""
    return json.dumps(dict(meta), sort_keys=True, ensure_ascii=True, separators=(", ", ": "))


def encoder_kib_per_segment(scripted, frames: int, feature_bins: int) -> int:
    """Peak working memory of ``scripted.encode`` per segment, in KiB.

    The encoder's activations (attention maps, feed-forward, conv stacks)
    are a transient the decoder caches do not show: full-size YourMT3 holds
    ~165 MiB per segment at its peak, five times its cross K/V.  The C memory
    plan (``mt3_pipeline_plan``) sizes encoder calls from this figure.
    Measured, not modelled: two zero segments encoded under the torch
    profiler's allocation record, the running sum of allocations and frees
    in time order, its maximum halved (peak memory is linear in the batch;
    output tensors included, they live on as cross K/V).  Returns 0 when
    the profiler cannot say, and the plan falls back to its estimate."""
    torch = require_torch()
    from torch.profiler import ProfilerActivity, profile

    x = torch.zeros(2, int(frames), int(feature_bins))
    try:
        with torch.no_grad(), _quiet_stderr():
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                scripted.encode(x)
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except Exception:  # a torch without the allocation record: the plan estimates instead
        return 0
    events.sort(key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return int(-(-peak // 2048))  # per segment, KiB, rounded up


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 for a block: the profiler's C++ side logs
    two lines per run there, which would land in every export's output."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def save_scripted(scripted, out_path: str, meta: Mapping) -> str:
    """torch.jit.save ``scripted`` with ``mt3_infer.json`` to ``out_path``
    atomically (write to a temporary file in the same folder, then rename),
    so a concurrent reader never sees half a file.  Returns the path."""
    from ..utils.atomic import atomic_path

    torch = require_torch()
    validate_meta(meta)

    out_path = os.path.abspath(os.fspath(out_path))
    with atomic_path(out_path, prefix=".mt3_export_") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated upstream
            torch.jit.save(scripted, tmp, _extra_files={META_NAME: meta_json(meta)})
    return out_path


def read_artifact_meta(path: str) -> Optional[Dict]:
    """The ``mt3_infer.json`` dict of an exported file, read with zipfile
    (no torch needed).  Returns None when ``path`` is not a zip archive (e.g.
    an original checkpoint saved with the legacy format); raises
    CheckpointError when it is a TorchScript archive without valid metadata."""
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            hits = [n for n in names if n.endswith("/extra/" + META_NAME)]
            if not hits:
                if any(n.endswith("/constants.pkl") or n.endswith("/code/__torch__.py") or
                       "/code/" in n for n in names):
                    raise CheckpointError(
                        f"{path!r} is a TorchScript file without {META_NAME}; it was not "
                        "produced by `mt3-infer export`. Export the original checkpoint."
                    )
                return None
            raw = zf.read(hits[0])
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"cannot read {path!r}: {exc}") from exc
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path!r}: {META_NAME} is not valid JSON ({exc})") from exc
    validate_meta(meta)
    return meta


def is_torchscript_file(path: str) -> bool:
    """True when ``path`` is a zip archive holding TorchScript code."""
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any("/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def exported_cache_path(checkpoint: str, tag: Optional[str] = None) -> str:
    """Where ``load_model`` keeps the export of ``checkpoint``: beside it,
    ``<stem>.mt3i.pt`` (or ``<stem>.<tag>.mt3i.pt``)."""
    checkpoint = os.path.abspath(os.fspath(checkpoint))
    stem, _ = os.path.splitext(checkpoint)
    return f"{stem}.{tag}.mt3i.pt" if tag else f"{stem}.mt3i.pt"


def stack_manifest(prefix: str, per_layer: Sequence[Tuple[str, Tuple[int, ...]]],
                   n: int) -> Iterable[Tuple[str, Tuple[int, ...]]]:
    """Expand ``prefix.{i}.`` + each per-layer key for i in range(n)."""
    for i in range(n):
        for name, shape in per_layer:
            yield f"{prefix}.{i}.{name}", shape


__all__ = [
    "FORMAT_VERSION",
    "EXPORTER_VERSION",
    "META_NAME",
    "require_torch",
    "sha256_file",
    "load_torch_file",
    "check_state_dict",
    "build_meta",
    "validate_meta",
    "meta_json",
    "save_scripted",
    "encoder_kib_per_segment",
    "read_artifact_meta",
    "is_torchscript_file",
    "exported_cache_path",
    "stack_manifest",
]

"""The exported model: one owner for "model id / path -> checkpoint -> export -> artifact".

An *artifact* is the TorchScript file the native engine runs (a zip carrying
``extra/mt3_infer.json``; see ``csrc/engine/engine.h``).  Everything that
reads an artifact's metadata, checks one for damage, finds the weights inside
a checkpoint folder, decides whether a cached export is still current or
makes one goes through this module: the API, the adapters, downloads and the
``mt3-infer export`` command.  Nothing here imports torch; exporting does,
lazily, through the family's exporter named in :data:`registry.FAMILIES`.

Where an export is cached:

* a registry checkpoint: ``<root>/<model>/<model>.mt3i.pt`` (the registry's
  ``checkpoint["export"]["file"]``);
* any other checkpoint: ``<stem>.mt3i.pt`` beside it, or, when that folder is
  not writable, ``<cache>/exports/<family>-<hash of the path>.mt3i.pt`` under
  ``$MT3_CACHE_DIR`` (default ``$XDG_CACHE_HOME/mt3_infer`` or
  ``~/.cache/mt3_infer``);
* an explicit ``output`` (``mt3-infer export -o``): that file only.

A cached export is *current* when it is intact (every zip record passes its
CRC-32), of the right family, written by this exporter version, and made from
this source: the recorded ``source_sha256`` equals the registry's checksum of
the file, or the recorded source size and mtime equal the file's, or (last,
one read of the file) its sha256 does.  Anything else is remade, once, under a
lock that holds across threads and processes, written to a temporary file and
moved into place.
"""
from __future__ import annotations

import errno
import hashlib
import os
import threading
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

from . import registry
from .exceptions import CheckpointError, FrameworkError
from .utils import progress as progress_helper
from .utils.atomic import atomic_path, file_lock
from .export.common import EXPORTER_VERSION, exported_cache_path, read_artifact_meta, sha256_file

PathArg = Union[str, os.PathLike]

__all__ = [
    "damage",
    "locate",
    "metadata",
    "read_meta",
    "resolve",
    "sha256_file",
    "user_cache_dir",
]

#: the strict reader: None for a file that is no zip, CheckpointError for a
#: TorchScript file without valid metadata (export.common owns the format).
read_meta = read_artifact_meta


def metadata(path: PathArg) -> Optional[Dict[str, Any]]:
    """The artifact's metadata, or None when ``path`` is not a valid artifact
    (missing, not a zip, no or invalid ``mt3_infer.json``): :func:`read_meta`
    with every failure answered None."""
    try:
        return read_meta(os.fspath(path))
    except (CheckpointError, OSError, ValueError):
        return None


# damage() answers per (path, size, mtime): an artifact handed from the API to
# an adapter, or loaded again, is read once.
_DAMAGE_SEEN: Dict[tuple, Optional[str]] = {}
_DAMAGE_LOCK = threading.Lock()


def damage(path: PathArg) -> Optional[str]:
    """None when the artifact is intact, else what is wrong with it.

    An export is a zip whose every record carries a CRC-32 (the TorchScript
    writer stores them); this reads every record and checks it, so a flipped
    byte in the weights, a truncation or a half-written file is found before
    libtorch would load wrong weights or fail half-way.  Costs one read of the
    file (~0.2 s for 186 MB) the first time; an unchanged file is not read
    again in this process."""
    try:
        st = os.stat(path)
        key = (os.path.abspath(os.fspath(path)), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    except OSError as exc:
        return f"it is not a readable zip ({exc})"
    with _DAMAGE_LOCK:
        if key in _DAMAGE_SEEN:
            return _DAMAGE_SEEN[key]
    found = _damage(path)
    with _DAMAGE_LOCK:
        if len(_DAMAGE_SEEN) > 256:
            _DAMAGE_SEEN.clear()
        _DAMAGE_SEEN[key] = found
    return found


def _damage(path: PathArg) -> Optional[str]:
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            if bad is not None:
                return f"record {bad!r} fails its CRC-32 check"
            if not any(n.endswith("extra/mt3_infer.json") for n in z.namelist()):
                return "it carries no mt3_infer.json"
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        return f"it is not a readable zip ({exc})"
    return None


def user_cache_dir() -> str:
    """Folder of exports whose checkpoint folder is not writable."""
    base = os.environ.get("MT3_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "mt3_infer"
    )
    return os.path.join(base, "exports")


def locate(path: PathArg, family: str) -> str:
    """The file to read for ``path`` of a ``family`` checkpoint: the file
    itself, or inside a folder the family's weights file
    (:data:`registry.FAMILIES`) or an exported ``.mt3i.pt``."""
    fam = registry.FAMILIES[family]
    path = os.fspath(path)
    if os.path.isdir(path):
        for rel in fam["weights"]:
            cand = os.path.join(path, rel)
            if os.path.isfile(cand):
                return cand
        exported = [f for f in sorted(os.listdir(path)) if f.endswith(".mt3i.pt")]
        if exported:
            return os.path.join(path, exported[0])
        raise CheckpointError(
            f"checkpoint directory {path!r} has no {fam['weights'][0]}; expected {fam['what']} "
            "or an exported .pt file"
        )
    if not os.path.exists(path):
        raise CheckpointError(f"Checkpoint not found: {path}")
    return path


def _is_current(cache: str, source: str, family: str, sha256: Optional[str]) -> bool:
    if not os.path.isfile(cache):
        return False
    meta = metadata(cache)
    if meta is None or meta.get("family") != family or meta.get("exporter_version") != EXPORTER_VERSION:
        return False
    if damage(cache) is not None:
        return False
    recorded = meta.get("source_sha256")
    if sha256 is not None:
        return recorded == sha256
    try:
        st = os.stat(source)
    except OSError:
        return False
    if meta.get("source_size") == st.st_size and meta.get("source_mtime_ns") == st.st_mtime_ns:
        return True
    return recorded == sha256_file(source)


def can_export(family: str) -> bool:
    """True when torch and the family's exporter are installed (nothing is imported)."""
    import importlib.util

    try:
        if importlib.util.find_spec("torch") is None:
            return False
        return importlib.util.find_spec(registry.FAMILIES[family]["exporter"]) is not None
    except (ImportError, ValueError):
        return False


def _export(family: str, source: str, target: str) -> None:
    """Run the family's exporter (imports torch, lazily) into ``target``."""
    try:
        from .export import export_checkpoint
    except ImportError as exc:  # pragma: no cover - broken install
        raise FrameworkError(f"Exporting a {family!r} checkpoint needs torch: {exc}") from exc
    export_checkpoint(family, source, target)


def resolve(checkpoint: Optional[PathArg] = None, *, model: Optional[str] = None,
            family: Optional[str] = None, output: Optional[PathArg] = None, force: bool = False,
            quiet: Optional[bool] = None) -> Path:
    """The artifact to load for ``checkpoint``: the file itself when it is
    one (checked for damage), else the current cached export of the original
    checkpoint, made now when missing, stale or damaged (needs torch).

    ``model`` (a registry id or alias) gives the family, the default
    checkpoint (its registry copy) and the registry checksum; without it,
    ``family`` must be given.  ``output``: export to that file (always made
    when not current).  ``force``: export again even when current.
    ``quiet``: no "Exporting ..." line on stderr (None: only on a terminal).

    Raises CheckpointError (missing, foreign or damaged files; nowhere
    writable) and FrameworkError (an export is needed and torch is not
    installed)."""
    mid = registry.resolve_model_name(model) if model is not None else None
    fam = family or (registry.family(mid) if mid else None)
    if fam not in registry.FAMILIES:
        raise ValueError(f"unknown network family {fam!r}; one of {', '.join(registry.FAMILIES)}")
    if checkpoint is None:
        if mid is None:
            raise ValueError(f"checkpoint is required: an exported model (.pt) or {registry.FAMILIES[fam]['what']}")
        ckpt = registry.default_checkpoint_path(mid)
    else:
        ckpt = Path(os.path.abspath(os.path.expanduser(os.fspath(checkpoint))))
    if mid is None:  # a registry model's own checkpoint keeps its registry export
        mid = next((m for m in registry.model_ids() if registry.family(m) == fam
                    and registry.default_checkpoint_path(m).absolute() == ckpt.absolute()), None)
    is_registry = mid is not None and ckpt.absolute() == registry.default_checkpoint_path(mid).absolute()
    try:
        source = locate(ckpt, fam)
    except CheckpointError:
        if is_registry and not registry.is_bundled(mid):
            raise CheckpointError(f"Checkpoint not found: {ckpt} (run `mt3-infer download {mid}` first)") from None
        raise
    meta = read_meta(source)  # CheckpointError for TorchScript without valid metadata
    if meta is None and mid is not None and registry.is_bundled(mid):
        raise CheckpointError(f"the bundled network {source} is damaged ({damage(source)}); reinstall "
                              "mt3-infer (pip install --force-reinstall mt3-infer)")
    if meta is not None and output is None:
        bad = damage(source)
        if bad is not None:
            raise CheckpointError(f"the exported model {source} is damaged ({bad}); export it again, or "
                                  "reinstall mt3-infer if it is the bundled network")
        return Path(source)

    sha = registry.known_sha256(mid, Path(source)) if is_registry else None
    if output is not None:
        candidates = [Path(output)]
    elif is_registry:
        candidates = [registry.exported_model_path(mid)]
    else:
        key = hashlib.sha1(source.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        candidates = [Path(exported_cache_path(source)), Path(user_cache_dir()) / f"{fam}-{key}.mt3i.pt"]
    if not force:
        for cache in candidates:
            if _is_current(str(cache), source, fam, sha):
                return cache
    if not can_export(fam):
        from ._engine import torch_install_hint

        raise FrameworkError(
            f"{source!r} is an original checkpoint; turning it into the network file needs PyTorch "
            f"(torch is not importable). Install it with: {torch_install_hint()}; or pass a file made "
            "by `mt3-infer export`."
        )
    last_error: Optional[OSError] = None
    for cache in candidates:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with file_lock(cache):
                if not force and _is_current(str(cache), source, fam, sha):
                    return cache
                progress_helper.status(f"Exporting {mid or fam} to TorchScript (once): {cache}", quiet)
                with atomic_path(cache) as tmp:
                    _export(fam, source, tmp)
            return cache
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise
            last_error = exc  # not writable here: the next place
    raise CheckpointError(f"cannot write the exported model for {source!r} in "
                          f"{', '.join(str(c.parent) for c in candidates)}: {last_error}")


"""Verified, resumable, concurrent-safe checkpoint downloads (stdlib only).

Every registry file is fetched over HTTPS with ``urllib``:

* streamed into ``<target>.part`` beside the target, resumed with an HTTP
  ``Range`` request when the transfer is interrupted (within the same call,
  up to ``retries`` times, and by a later call that finds the ``.part`` file);
* checked against the recorded byte size and sha256 — a mismatch deletes the
  partial file and raises :class:`~mt3_infer.exceptions.CheckpointDownloadError`
  ("Checksum verification failed! Expected … Got …"), leaving nothing in place;
* moved into place with an atomic ``os.replace`` after an ``fsync``;
* guarded by an exclusive file lock (``.<name>.lock``), so two processes
  downloading the same model leave one good file and download it once.

Progress: a bar on stderr when stderr is a terminal (tqdm when installed, a
plain text bar otherwise); silent when not a terminal.  ``progress=True/False``
forces it; a callable receives ``(bytes_done, bytes_total_or_None)``.

Offline mode: ``MT3_OFFLINE=1`` (or ``auto_download=False`` in
:func:`mt3_infer.load_model`) never touches the network; a missing checkpoint
then raises :class:`~mt3_infer.exceptions.CheckpointError` saying which URL to
fetch and where to put the file.

After a model's files are in place, :func:`ensure_exported` converts the
checkpoint to the TorchScript artifact the native engine runs, once, and caches
it beside the checkpoint (torch is imported only there, lazily).
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from . import artifact, registry
from .exceptions import CheckpointDownloadError, CheckpointError
from .export.common import sha256_file
from .utils import progress as progress_helper
from .utils.atomic import file_lock

OFFLINE_ENV = "MT3_OFFLINE"
RETRIES_ENV = "MT3_DOWNLOAD_RETRIES"
#: Comma-separated host names (a leading "." = that domain and its subdomains)
#: that downloads may be redirected to, beyond the defaults; "*" allows any.
REDIRECT_HOSTS_ENV = "MT3_DOWNLOAD_REDIRECT_HOSTS"
# Where the upstream hosts send their files: Hugging Face's resolve URLs go to
# its CDN / storage hosts, GitHub's media URLs stay under githubusercontent.
_REDIRECT_DEFAULTS = {
    "huggingface.co": (".huggingface.co", ".hf.co"),
    "media.githubusercontent.com": (".githubusercontent.com",),
}
_CHUNK = 1 << 20
_USER_AGENT = "mt3-infer (+https://pypi.org/project/mt3-infer/)"

ProgressArg = Union[None, bool, Callable[[int, Optional[int]], Any]]

__all__ = [
    "OFFLINE_ENV",
    "REDIRECT_HOSTS_ENV",
    "download_file",
    "download_model",
    "ensure_exported",
    "exported_metadata",
    "export_damage",
    "is_offline",
    "missing_files",
    "offline_message",
    "sha256_file",
    "verify_file",
]


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------
def is_offline() -> bool:
    """True when ``MT3_OFFLINE`` is set to 1/true/yes/on."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def verify_file(path: Union[str, os.PathLike], sha256: Optional[str] = None,
                size: Optional[int] = None) -> bool:
    """True when ``path`` is a file with the given size and sha256 (each optional)."""
    p = Path(path)
    if not p.is_file():
        return False
    if size is not None and p.stat().st_size != size:
        return False
    if sha256 is not None and sha256_file(p) != sha256.lower():
        return False
    return True


def _human(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class _Progress:
    """Download progress: a byte bar (:mod:`mt3_infer.utils.progress`) or the
    caller's ``callback(bytes_done, bytes_total_or_None)``; ``None`` draws the
    bar when stderr is a terminal, ``True`` always."""

    def __init__(self, total: Optional[int], desc: str, progress: ProgressArg):
        self.total = total
        self.done = 0
        draw, self.callback = progress_helper.resolve(progress, none="tty", true="on",
                                                      what="bytes_done, bytes_total_or_None")
        self._bar = None
        if draw:
            self._bar = progress_helper.Bar(total, desc, self._render(desc), leave=True, unit="B",
                                            unit_scale=True, unit_divisor=1024)

    @staticmethod
    def _render(desc: str):
        def line(done: int, total: Optional[int], seconds: float) -> str:
            rate = done / max(seconds, 1e-6)
            if total:
                frac = min(done / total, 1.0)
                bar = "=" * int(frac * 30)
                bar = (bar + ">" if len(bar) < 30 else bar).ljust(30)
                return f"{desc} [{bar}] {frac * 100:5.1f}% {_human(done)}/{_human(total)} {_human(rate)}/s"
            return f"{desc} {_human(done)} {_human(rate)}/s"
        return line

    def _emit(self, force: bool = False) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total)
        elif self._bar is not None:
            self._bar.update_to(self.done, force=force)

    def start_at(self, n: int) -> None:
        self.done = n
        self._emit(force=True)

    def update(self, n: int) -> None:
        self.done += n
        self._emit()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _make_dirs(folder: Path) -> List[Path]:
    """mkdir -p ``folder``; return the folders this call created (deepest last)."""
    created = []
    p = folder
    while not p.exists():
        created.append(p)
        if p.parent == p:
            break
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(created))


def _remove_empty_dirs(created: List[Path]) -> None:
    """Remove the folders of :func:`_make_dirs` again when they are still empty."""
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:  # not empty (another download, a kept .part file) or gone
            break


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Retry(Exception):
    """Internal: the transfer broke off; resume from the .part file."""


def _content_range_start(value: Optional[str]) -> Optional[int]:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _host_allowed(host: str, patterns) -> bool:
    host = host.lower().rstrip(".")
    for p in patterns:
        p = p.strip().lower()
        if p == "*" or host == p.lstrip(".") or (p.startswith(".") and host.endswith(p)):
            return True
    return False


class _RedirectPolicy(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the same host, to the upstream host's own
    delivery hosts (_REDIRECT_DEFAULTS) or to hosts named in
    MT3_DOWNLOAD_REDIRECT_HOSTS; never from https to http.  (Every file is
    sha256-verified anyway; this keeps requests, and the client's address,
    away from hosts nobody chose.)"""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old = urllib.parse.urlsplit(req.full_url)
        new = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl))
        if old.scheme == "https" and new.scheme != "https":
            raise CheckpointDownloadError(
                f"refusing the redirect from {req.full_url} to {new.geturl()}: it leaves HTTPS")
        if new.hostname != old.hostname:
            allowed = list(_REDIRECT_DEFAULTS.get(old.hostname or "", ()))
            allowed += [h for h in os.environ.get(REDIRECT_HOSTS_ENV, "").split(",") if h.strip()]
            if not _host_allowed(new.hostname or "", allowed):
                raise CheckpointDownloadError(
                    f"refusing the redirect from {old.hostname} to {new.hostname} ({new.geturl()}); "
                    f"set {REDIRECT_HOSTS_ENV}={new.hostname} to allow it")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# TLS: urllib's default HTTPS handler verifies certificates and host names
# against the system's CA store (ssl.create_default_context).
_OPENER = urllib.request.build_opener(_RedirectPolicy)


def _fetch_into(url: str, part: Path, size: Optional[int], timeout: float,
                bar: _Progress) -> None:
    """One HTTP attempt appending to ``part``; raises _Retry on a broken transfer."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = _OPENER.open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # The server has nothing past our offset: the .part file is either
            # complete (verified by the caller) or not the same object.
            if size is None or offset == size:
                return
            part.unlink()
            raise _Retry(f"HTTP 416 at offset {offset}") from exc
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from exc
        raise CheckpointDownloadError(f"Failed to download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        host = urllib.parse.urlsplit(url).netloc or url
        if isinstance(reason, ssl.SSLCertVerificationError) or isinstance(exc, ssl.SSLCertVerificationError):
            raise CheckpointDownloadError(  # permanent: not retried, never bypassed
                f"Failed to download {url}: the TLS certificate of {host} does not verify "
                f"({getattr(reason, 'verify_message', None) or reason}). Check the system's CA "
                f"certificates (SSL_CERT_FILE) or the mirror's certificate.") from exc
        raise _Retry(f"cannot reach {host} ({reason}); no network, or the host is blocked") from exc
    with resp:
        status = getattr(resp, "status", 200)
        if offset and status == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Retry(f"server resumed at {start}, expected {offset}")
            mode = "ab"
        else:
            offset = 0
            mode = "wb"
        length = resp.headers.get("Content-Length")
        expect = offset + int(length) if length and length.isdigit() else None
        if bar.total is None and expect is not None:
            bar.total = expect
        bar.start_at(offset)
        received = offset
        with open(part, mode) as out:
            try:
                while True:
                    block = resp.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                out.flush()
                raise _Retry(f"connection lost after {received} bytes: {exc}") from exc
            out.flush()
            os.fsync(out.fileno())
        if expect is not None and received < expect:
            raise _Retry(f"connection closed after {received} of {expect} bytes")
        if size is not None and received < size:
            raise _Retry(f"connection closed after {received} of {size} bytes")


def download_file(url: str, dest: Union[str, os.PathLike], sha256: Optional[str] = None, *,
                  size: Optional[int] = None, progress: ProgressArg = None,
                  timeout: float = 30.0, retries: Optional[int] = None,
                  desc: Optional[str] = None) -> Path:
    """Download ``url`` to ``dest`` (verified, resumable, atomic, locked).

    Returns ``dest`` as a Path.  If ``dest`` already exists with the right size
    and sha256 nothing is fetched.  Raises :class:`CheckpointDownloadError` on
    HTTP errors, repeated connection failures or a checksum mismatch; an
    interrupted transfer keeps ``<dest>.part`` so the next call resumes it.
    ``retries`` (default ``$MT3_DOWNLOAD_RETRIES`` or 5) bounds the resumes and
    the retries of 5xx/408/429 answers, with exponential back-off.
    """
    dest = Path(dest)
    if retries is None:
        try:
            retries = max(0, int(os.environ.get(RETRIES_ENV, "5")))
        except ValueError:
            retries = 5
    created = _make_dirs(dest.parent)
    try:
        return _download_locked(url, dest, sha256, size, progress, timeout, retries, desc)
    except BaseException:
        _remove_empty_dirs(created)  # a failed first download leaves no empty model folder
        raise


def _download_locked(url: str, dest: Path, sha256: Optional[str], size: Optional[int],
                     progress: ProgressArg, timeout: float, retries: int,
                     desc: Optional[str]) -> Path:
    part = dest.with_name(dest.name + ".part")
    with file_lock(dest):
        if dest.exists() and verify_file(dest, sha256, size):
            return dest
        bar = _Progress(size, desc or dest.name, progress)
        try:
            attempt = 0
            while True:
                try:
                    _fetch_into(url, part, size, timeout, bar)
                    break
                except _Retry as exc:
                    attempt += 1
                    if attempt > retries:
                        kept = (f"; the partial file {part} is kept and the next attempt resumes it"
                                if part.exists() and part.stat().st_size else "")
                        raise CheckpointDownloadError(
                            f"Failed to download {url}: {exc} (gave up after {retries} "
                            f"retr{'y' if retries == 1 else 'ies'}{kept})"
                        ) from exc
                    time.sleep(min(0.2 * 2 ** (attempt - 1), 5.0))
        finally:
            bar.close()
        if not part.exists():
            raise CheckpointDownloadError(f"Failed to download {url}: nothing was received")
        got_size = part.stat().st_size
        if size is not None and got_size != size:
            part.unlink()
            raise CheckpointDownloadError(
                f"Failed to download {url}: size check failed! Expected {size} bytes, got {got_size}"
            )
        if sha256 is not None:
            got = sha256_file(part)
            if got != sha256.lower():
                part.unlink()
                raise CheckpointDownloadError(
                    f"Failed to download {url}: Checksum verification failed! "
                    f"Expected {sha256.lower()}, Got {got}. Nothing was kept."
                )
        os.replace(part, dest)
        _fsync_dir(dest.parent)
    return dest


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
def missing_files(model: str, *, verify: bool = False) -> List[Dict[str, Any]]:
    """Registry files of ``model`` that are absent (or, with ``verify``, fail
    their sha256); a present file of the wrong size always counts as missing."""
    out = []
    for f in registry.files_for(model):
        p: Path = f["path"]
        if not p.is_file() or p.stat().st_size != f["size"]:
            out.append(f)
        elif verify and sha256_file(p) != f["sha256"]:
            out.append(f)
    return out


def _wrong_size(f: Dict[str, Any]) -> Optional[int]:
    """Size of a registry file present on disk with the wrong size, else None."""
    p: Path = f["path"]
    try:
        if p.is_file():
            actual = p.stat().st_size
            return actual if actual != f["size"] else None
    except OSError:
        pass
    return None


def offline_message(model: str, files: List[Dict[str, Any]], reason: Optional[str] = None, *,
                    error: Optional[str] = None) -> str:
    """How to get ``files`` of ``model`` in place by hand: the one message for
    downloads that are disabled (``reason``, e.g. ``MT3_OFFLINE=1``) and for a
    download that failed (``error``).  Names every URL, target path, size and
    sha256, a file already there with the wrong size, and the environment
    variables (checkpoint root, mirror, offline mode)."""
    mid = registry.resolve_model_name(model)
    wrong = {str(f["path"]): _wrong_size(f) for f in files}
    if error is not None:
        head = f"Could not download the checkpoint of model '{mid}': {error}"
    elif files and all(v is not None for v in wrong.values()):
        head = (f"The checkpoint of model '{mid}' on disk has the wrong size (truncated or corrupt) "
                f"and downloads are disabled ({reason}).")
    else:
        head = (f"The checkpoint of model '{mid}' is not available locally and downloads are "
                f"disabled ({reason}).")
    lines = [head, "Download these file(s) on a machine with network access and put them here:"]
    for f in files:
        lines.append(f"  {f['url']}")
        lines.append(f"    -> {f['path']}  ({f['size']:,} bytes, sha256 {f['sha256']})")
        actual = wrong[str(f["path"])]
        if actual is not None:
            lines.append(
                f"    a file is already there but it has {actual:,} bytes, expected {f['size']:,}: it "
                f"is truncated or corrupt; delete it, or run `mt3-infer download {mid} --force`"
            )
    lines.append(
        f"or run `mt3-infer download {mid}` there and copy the folder {registry.model_dir(mid)} "
        f"(set {registry.CHECKPOINT_DIR_ENV} to use another checkpoint root)."
    )
    lines.append(
        f"A mirror serving <url>/{mid}/<file name> can be used with {registry.MIRROR_ENV}=<url>"
        + (f"; {OFFLINE_ENV}=1 stops all download attempts (the files above must then be in place)."
           if error is not None else ".")
    )
    for b in registry.bundled_models():
        lines.append(
            f"Works right now, with no download: the bundled model '{b}' "
            f"(`mt3-infer transcribe -m offline ...`, or load_model(\"offline\"))."
        )
    return "\n".join(lines)


def bundled_missing_message(model: str, files: List[Dict[str, Any]]) -> str:
    """A bundled network file absent from, or altered in, this installation."""
    mid = registry.resolve_model_name(model)
    lines = [f"The network of model '{mid}' ships inside the mt3-infer package, but this "
             "installation's copy is missing or damaged:"]
    for f in files:
        actual = _wrong_size(f)
        state = "missing" if not Path(f["path"]).is_file() else (
            f"{actual:,} bytes, expected {f['size']:,}" if actual is not None else "sha256 mismatch")
        lines.append(f"  {f['path']}  ({state})")
    lines.append("Reinstall the package (pip install --force-reinstall mt3-infer); in a source checkout, "
                 "the file is committed under mt3_infer/models/.")
    return "\n".join(lines)


def _write_generated(model_id: str) -> None:
    gen = registry._entry(model_id)["checkpoint"].get("generated_files") or {}
    folder = registry.artifact_dir(model_id)
    for name, content in gen.items():
        p = folder / name
        if p.exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, p)


def fetch_model_files(model: str, *, force: bool = False, verify: bool = False,
                      progress: ProgressArg = None, quiet: Optional[bool] = None,
                      offline_reason: Optional[str] = None) -> Path:
    """Make sure every registry file of ``model`` is present; return the
    registry checkpoint path (file, or directory for mt3_pytorch)."""
    mid = registry.resolve_model_name(model)
    if registry.is_bundled(mid):
        bad = missing_files(mid, verify=verify)
        if bad:
            raise CheckpointError(bundled_missing_message(mid, bad))
        progress_helper.status(f"Bundled with the package: {registry.default_checkpoint_path(mid)}", quiet)
        return registry.default_checkpoint_path(mid)
    files = registry.files_for(mid) if force else missing_files(mid, verify=verify)
    if files:
        if offline_reason is None and is_offline():
            offline_reason = f"{OFFLINE_ENV}=1"
        if offline_reason is not None:
            raise CheckpointError(offline_message(mid, files, offline_reason))
        for f in files:
            p: Path = registry.inside_root(f["path"])
            if force or (p.exists() and verify):
                # re-download: drop the bad/old copy only once the lock is held
                with file_lock(p):
                    if p.exists():
                        p.unlink()
            progress_helper.status(f"Downloading {mid}: {f['url']}", quiet)
            try:
                download_file(f["url"], p, f["sha256"], size=f["size"], progress=progress,
                              desc=f"{mid}/{f['name']}")
            except CheckpointDownloadError as exc:
                raise CheckpointDownloadError(offline_message(mid, [f], error=str(exc))) from exc
    else:
        progress_helper.status(f"Checkpoint already present: {registry.default_checkpoint_path(mid)}", quiet)
    _write_generated(mid)
    return registry.default_checkpoint_path(mid)


# ---------------------------------------------------------------------------
# TorchScript export (owned by mt3_infer.artifact)
# ---------------------------------------------------------------------------
exported_metadata = artifact.metadata
export_damage = artifact.damage


def can_export(model: str) -> bool:
    """True when torch and the model family's exporter are installed (nothing is imported)."""
    return torch_available() and artifact.can_export(registry.family(model))


def ensure_exported(model: str, checkpoint_path: Union[None, str, os.PathLike] = None, *,
                    output: Union[None, str, os.PathLike] = None, force: bool = False,
                    quiet: Optional[bool] = None) -> Path:
    """Export ``model``'s checkpoint to TorchScript once and return the cached
    file (:func:`mt3_infer.artifact.resolve`): ``checkpoint_path`` defaults to
    the registry copy, ``output`` to the cache beside it; re-exported when
    ``force`` or when the cached artifact is not current."""
    return artifact.resolve(checkpoint_path, model=model, output=output, force=force, quiet=quiet)


def torch_available() -> bool:
    """True when torch can be imported (without importing it here)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def download_model(model: str = "default", *, force: bool = False, verify: bool = False,
                   export: Optional[bool] = None, progress: ProgressArg = None,
                   quiet: Optional[bool] = None) -> Path:
    """Fetch (and by default export) one registry model; see :func:`mt3_infer.download_model`."""
    mid = registry.resolve_model_name(model)
    path = fetch_model_files(mid, force=force, verify=verify, progress=progress, quiet=quiet)
    if export is None:
        export = can_export(mid)
    if export:
        ensure_exported(mid, force=force, quiet=quiet)
    return path

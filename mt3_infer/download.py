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

import base64
import contextlib
import hashlib
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


def md5_file(path: Union[str, os.PathLike]) -> str:
    """Hex MD5 of a file (what GCS lists as ``md5Hash``, base64-encoded there)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Union[str, os.PathLike], sha256: Optional[str] = None,
                size: Optional[int] = None, *, md5: Optional[str] = None) -> bool:
    """True when ``path`` is a file with the given size, sha256 and MD5 (each optional)."""
    p = Path(path)
    if not p.is_file():
        return False
    if size is not None and p.stat().st_size != size:
        return False
    if sha256 is not None and sha256_file(p) != sha256.lower():
        return False
    if md5 is not None and md5_file(p) != md5.lower():
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
                  desc: Optional[str] = None, md5: Optional[str] = None) -> Path:
    """Download ``url`` to ``dest`` (verified, resumable, atomic, locked).

    Returns ``dest`` as a Path.  If ``dest`` already exists with the right size
    and sha256 (and ``md5``, hex, where only that is published, as for GCS
    objects) nothing is fetched.  Raises :class:`CheckpointDownloadError` on
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
        return _download_locked(url, dest, sha256, size, progress, timeout, retries, desc, md5)
    except BaseException:
        _remove_empty_dirs(created)  # a failed first download leaves no empty model folder
        raise


def _download_locked(url: str, dest: Path, sha256: Optional[str], size: Optional[int],
                     progress: ProgressArg, timeout: float, retries: int,
                     desc: Optional[str], md5: Optional[str] = None) -> Path:
    part = dest.with_name(dest.name + ".part")
    with file_lock(dest):
        if dest.exists() and verify_file(dest, sha256, size, md5=md5):
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
        # the anchor's sha256 message; MD5 where only that is published (GCS md5Hash)
        for what, want, digest in (("Checksum", sha256, sha256_file), ("MD5", md5, md5_file)):
            if want is None:
                continue
            got = digest(part)
            if got != want.lower():
                part.unlink()
                raise CheckpointDownloadError(
                    f"Failed to download {url}: {what} verification failed! "
                    f"Expected {want.lower()}, Got {got}. Nothing was kept."
                )
        os.replace(part, dest)
        _fsync_dir(dest.parent)
    return dest


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
def missing_files(model: str, *, verify: bool = False) -> List[Dict[str, Any]]:
    """Registry files of ``model`` that are absent (or, with ``verify``, fail
    their sha256 / MD5); a present file of the wrong size always counts as
    missing.  A listing-based model (Magenta's) without its saved manifest
    has one missing item, the listing itself (``{"listing": True, ...}``),
    unless its folder already holds a T5X ``checkpoint`` file put there by
    hand (e.g. ``gsutil cp -r``): that folder is taken as it is, and the
    T5X reader checks it when it is exported."""
    mid = registry.resolve_model_name(model)
    if registry.listing(mid) is not None and registry.read_manifest(mid) is None:
        if (registry.artifact_dir(mid) / "checkpoint").is_file():
            return []
        return [_listing_item(mid)]
    out = []
    for f in registry.files_for(mid):
        p: Path = f["path"]
        if not p.is_file() or p.stat().st_size != f["size"]:
            out.append(f)
        elif verify and f.get("sha256") and sha256_file(p) != f["sha256"]:
            out.append(f)
        elif verify and f.get("md5") and md5_file(p) != f["md5"]:
            out.append(f)
    return out


def _listing_item(mid: str) -> Dict[str, Any]:
    """The stand-in 'file' of a listing-based model whose file list is not known yet."""
    spec = registry.listing(mid) or {}
    return {"name": registry.MANIFEST_NAME, "listing": True, "url": registry.listing_url(mid),
            "path": registry.manifest_path(mid), "size": None, "sha256": None, "md5": None,
            "source": f"gs://{spec.get('bucket')}/{spec.get('prefix')}"}


def _hash_text(f: Dict[str, Any]) -> str:
    if f.get("sha256"):
        return f"sha256 {f['sha256']}"
    if f.get("md5"):
        return f"md5 {f['md5']}"
    return "no checksum published: size only"


def _wrong_size(f: Dict[str, Any]) -> Optional[int]:
    """Size of a registry file present on disk with the wrong size, else None."""
    p: Path = f["path"]
    if f.get("size") is None:
        return None
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
    lines = [head]
    listed = [f for f in files if f.get("listing")]
    files = [f for f in files if not f.get("listing")]
    for f in listed:
        folder = registry.artifact_dir(mid)
        lines.append(f"Its files are the objects of the bucket folder {f['source']} (listed at {f['url']}). "
                     f"Copy that folder here on a machine with network access, e.g. "
                     f"`gsutil -m cp -r {f['source'].rstrip('/')} .` and move its contents to {folder} "
                     f"(the folder must hold the file 'checkpoint' and the target.* folders).")
    if files:
        lines.append("Download these file(s) on a machine with network access and put them here:")
    shown = files if len(files) <= 12 else files[:10]
    for f in shown:
        lines.append(f"  {f['url']}")
        lines.append(f"    -> {f['path']}  ({f['size']:,} bytes, {_hash_text(f)})")
        actual = wrong[str(f["path"])]
        if actual is not None:
            lines.append(
                f"    a file is already there but it has {actual:,} bytes, expected {f['size']:,}: it "
                f"is truncated or corrupt; delete it, or run `mt3-infer download {mid} --force`"
            )
    if len(shown) < len(files):
        rest = files[len(shown):]
        lines.append(f"  ... and {len(rest)} more file(s), {sum(f['size'] for f in rest):,} bytes, listed "
                     f"in {registry.manifest_path(mid)}")
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


# ---------------------------------------------------------------------------
# Bucket listings (Magenta's checkpoints: a GCS folder, no fixed file list)
# ---------------------------------------------------------------------------
_MAX_LISTING_PAGES = 100
_MAX_OBJECTS = 20000
_LISTING_WORKERS = 4


def _get_json(url: str, timeout: float, retries: int) -> Any:
    """GET ``url`` and parse JSON, retrying 5xx/408/429 and broken connections."""
    attempt = 0
    while True:
        req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept": "application/json"})
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                body = resp.read(64 << 20)
            return json.loads(body.decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if not (exc.code >= 500 or exc.code in (408, 429)) or attempt >= retries:
                raise CheckpointDownloadError(f"Failed to list {url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if attempt >= retries:
                host = urllib.parse.urlsplit(url).netloc or url
                raise CheckpointDownloadError(
                    f"Failed to list {url}: cannot reach {host} ({getattr(exc, 'reason', exc)})") from exc
        except ValueError as exc:
            raise CheckpointDownloadError(f"Failed to list {url}: the answer is not JSON ({exc})") from exc
        attempt += 1
        time.sleep(min(0.2 * 2 ** (attempt - 1), 5.0))


def _safe_relative(name: Any, where: str) -> str:
    """An object name below the model's prefix that is safe as a relative
    path (no absolute, empty, '.' or '..' parts, no backslash or NUL)."""
    parts = name.split("/") if isinstance(name, str) else []
    if (not parts or any(p in ("", ".", "..") for p in parts) or "\\" in name or "\0" in name
            or len(name) > 1024):
        raise CheckpointDownloadError(f"{where}: refusing the object name {name!r} (not a plain relative path)")
    return name


def _listed_object(item: Any, prefix: str, where: str) -> Optional[Dict[str, Any]]:
    """One GCS JSON API object resource -> manifest entry (None for the
    zero-byte folder marker)."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise CheckpointDownloadError(f"{where}: an item without a name in the object listing")
    name = item["name"]
    if not name.startswith(prefix):
        raise CheckpointDownloadError(f"{where}: object {name!r} is outside the folder {prefix!r}")
    rel = name[len(prefix):]
    try:
        size = int(item.get("size"))
    except (TypeError, ValueError):
        raise CheckpointDownloadError(f"{where}: object {name!r} has no valid size") from None
    if (rel == "" or rel.endswith("/")) and size == 0:
        return None  # folder marker
    rel = _safe_relative(rel, where)
    if size < 0:
        raise CheckpointDownloadError(f"{where}: object {name!r} has a negative size")
    md5 = None
    if item.get("md5Hash") is not None:  # composite objects have none (only crc32c)
        try:
            raw = base64.b64decode(str(item["md5Hash"]), validate=True)
        except (ValueError, TypeError):
            raw = b""
        if len(raw) != 16:
            raise CheckpointDownloadError(f"{where}: object {name!r} has an invalid md5Hash {item['md5Hash']!r}")
        md5 = raw.hex()
    crc = item.get("crc32c")
    return {"name": rel, "size": size, "md5": md5, "crc32c": str(crc) if crc is not None else None,
            "generation": str(item["generation"]) if item.get("generation") is not None else None}


def _fetch_listing(mid: str, timeout: float = 30.0, retries: Optional[int] = None) -> Dict[str, Any]:
    """The model's manifest, from the bucket's JSON listing (every page) or,
    with ``$MT3_DOWNLOAD_MIRROR``, from the mirror's saved manifest."""
    if retries is None:
        retries = _retries_default()
    spec = registry.listing(mid) or {}
    source = f"gs://{spec.get('bucket')}/{spec.get('prefix')}"
    if os.environ.get(registry.MIRROR_ENV):
        url = registry.listing_url(mid)
        doc = _get_json(url, timeout, retries)
        if not isinstance(doc, dict) or not isinstance(doc.get("objects"), list):
            raise CheckpointDownloadError(f"{url} is not an mt3-infer manifest (no 'objects' list)")
        objects = []
        for o in doc["objects"]:
            if not isinstance(o, dict) or not isinstance(o.get("size"), int) or o["size"] < 0:
                raise CheckpointDownloadError(f"{url}: an object without a valid name and size")
            md5 = o.get("md5")
            if md5 is not None and not (isinstance(md5, str) and len(md5) == 32
                                        and all(c in "0123456789abcdef" for c in md5)):
                raise CheckpointDownloadError(f"{url}: object {o.get('name')!r} has an invalid md5 {md5!r}")
            objects.append({"name": _safe_relative(o.get("name"), url), "size": o["size"], "md5": md5,
                            "crc32c": o.get("crc32c"), "generation": o.get("generation")})
        listing_src = url
    else:
        objects, token, seen = [], None, set()
        first = registry.listing_url(mid)
        for _ in range(_MAX_LISTING_PAGES):
            url = registry.listing_url(mid, token)
            page = _get_json(url, timeout, retries)
            if not isinstance(page, dict):
                raise CheckpointDownloadError(f"{url}: not a GCS object listing")
            for item in page.get("items", []) or []:
                entry = _listed_object(item, spec["prefix"], url)
                if entry is not None:
                    objects.append(entry)
            if len(objects) > _MAX_OBJECTS:
                raise CheckpointDownloadError(f"{first}: more than {_MAX_OBJECTS} objects; not a checkpoint folder")
            token = page.get("nextPageToken")
            if not token:
                break
            if token in seen:
                raise CheckpointDownloadError(f"{url}: the listing repeats its page token {token!r}")
            seen.add(token)
        else:
            raise CheckpointDownloadError(f"{first}: more than {_MAX_LISTING_PAGES} listing pages")
        listing_src = first
    names = [o["name"] for o in objects]
    if len(set(names)) != len(names):
        raise CheckpointDownloadError(f"{listing_src}: the listing names an object twice")
    if "checkpoint" not in names:
        raise CheckpointDownloadError(
            f"{listing_src}: the folder {source} lists {len(objects)} object(s) but no 'checkpoint' "
            "file; it is not a T5X checkpoint (or the bucket changed)")
    unhashed = [o["name"] for o in objects if o["md5"] is None]
    return {
        "format": "mt3-infer-manifest/1",
        "model": mid,
        "source": source,
        "listing": listing_src,
        "listed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "objects": sorted(objects, key=lambda o: o["name"]),
        "total_bytes": sum(o["size"] for o in objects),
        "verified": ("size and MD5 of every object" if not unhashed else
                     f"size of every object; MD5 of all but {len(unhashed)} (the server lists none for them)")
                    + " as the server lists them; crc32c recorded, not checked",
    }


def _write_json_atomic(path: Path, doc: Dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _retries_default() -> int:
    try:
        return max(0, int(os.environ.get(RETRIES_ENV, "5")))
    except ValueError:
        return 5


class _Total:
    """One progress bar (or callback) over many files fetched in parallel."""

    def __init__(self, total: int, desc: str, progress: ProgressArg):
        import threading

        self._bar = _Progress(total, desc, progress)
        self._lock = threading.Lock()
        self._base = 0  # bytes of the files finished or already present
        self._live: Dict[str, int] = {}

    def add_done(self, n: int) -> None:
        with self._lock:
            self._base += n
            self._bar.start_at(self._base + sum(self._live.values()))

    def callback_for(self, key: str):
        def cb(done: int, _total: Optional[int]) -> None:
            with self._lock:
                self._live[key] = done
                self._bar.done = self._base + sum(self._live.values())
                self._bar._emit()
        return cb

    def finish(self, key: str, size: int) -> None:
        with self._lock:
            self._live.pop(key, None)
            self._base += size
            self._bar.done = self._base + sum(self._live.values())
            self._bar._emit()

    def close(self) -> None:
        self._bar.close()


def _fetch_listing_model(mid: str, *, force: bool, verify: bool, progress: ProgressArg,
                         quiet: Optional[bool], offline_reason: Optional[str]) -> Path:
    """fetch_model_files for a listing-based model (see the module notes)."""
    folder = registry.inside_root(registry.artifact_dir(mid))
    missing = missing_files(mid, verify=verify)
    if not missing and not force:
        progress_helper.status(f"Checkpoint already present: {folder}", quiet)
        return registry.default_checkpoint_path(mid)
    if offline_reason is None and is_offline():
        offline_reason = f"{OFFLINE_ENV}=1"
    if offline_reason is not None:
        raise CheckpointError(offline_message(mid, missing or registry.files_for(mid), offline_reason))
    created = _make_dirs(folder)
    try:
        with file_lock(registry.manifest_path(mid)):
            doc = None if force else registry.read_manifest(mid)
            if doc is None:
                url = registry.listing_url(mid)
                progress_helper.status(f"Listing {mid}: {url}", quiet)
                try:
                    doc = _fetch_listing(mid)
                except CheckpointDownloadError as exc:
                    raise CheckpointDownloadError(
                        offline_message(mid, [_listing_item(mid)], error=str(exc))) from exc
                notice = registry._entry(mid)["checkpoint"].get("licence")
                if notice:  # once, even when quiet: the manifest records that it was shown
                    import sys

                    print(notice, file=sys.stderr, flush=True)
                doc["licence_notice"] = notice
                _write_json_atomic(registry.manifest_path(mid), doc)
    except BaseException:
        _remove_empty_dirs(created)
        raise
    files = registry.files_for(mid)
    for f in files:
        registry.inside_root(f["path"].parent)  # no object escapes the folder through a link
    todo = files if force else missing_files(mid, verify=verify)
    if todo:
        total = _Total(sum(f["size"] for f in files), mid, progress)
        total.add_done(sum(f["size"] for f in files) - sum(f["size"] for f in todo))
        progress_helper.status(f"Downloading {mid}: {len(todo)} object(s), "
                               f"{_human(sum(f['size'] for f in todo))} from {doc['source']}", quiet)
        try:
            _download_many(mid, todo, total, force=force or verify)
        finally:
            total.close()
    return registry.default_checkpoint_path(mid)


def _download_many(mid: str, todo: List[Dict[str, Any]], total: _Total, *, force: bool) -> None:
    """Fetch ``todo`` (files_for items) with a few parallel connections; the
    first failure stops the rest and is raised with the manual-download help."""
    from concurrent.futures import ThreadPoolExecutor

    import threading

    stop = threading.Event()

    def one(f: Dict[str, Any]) -> None:
        if stop.is_set():
            return
        p: Path = f["path"]
        if force:
            with file_lock(p):
                if p.exists():
                    p.unlink()
        try:
            download_file(f["url"], p, None, size=f["size"], md5=f.get("md5"),
                          progress=total.callback_for(f["name"]), desc=f"{mid}/{f['name']}")
        except BaseException:
            stop.set()
            raise
        total.finish(f["name"], f["size"])

    with ThreadPoolExecutor(max_workers=_LISTING_WORKERS, thread_name_prefix="mt3-download") as pool:
        futures = [(f, pool.submit(one, f)) for f in todo]
        first: Optional[BaseException] = None
        failed = None
        for f, fut in futures:
            try:
                fut.result()
            except BaseException as exc:  # the first one wins; the others were stopped
                if first is None:
                    first, failed = exc, f
    if first is not None:
        if isinstance(first, CheckpointDownloadError):
            raise CheckpointDownloadError(offline_message(mid, [failed], error=str(first))) from first
        raise first


def fetch_model_files(model: str, *, force: bool = False, verify: bool = False,
                      progress: ProgressArg = None, quiet: Optional[bool] = None,
                      offline_reason: Optional[str] = None) -> Path:
    """Make sure every registry file of ``model`` is present; return the
    registry checkpoint path (file, or directory for mt3_pytorch and the
    Magenta models)."""
    mid = registry.resolve_model_name(model)
    if registry.listing(mid) is not None:
        return _fetch_listing_model(mid, force=force, verify=verify, progress=progress, quiet=quiet,
                                    offline_reason=offline_reason)
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

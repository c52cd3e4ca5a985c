"""0.2.0's ``mt3_infer.utils.download``, over :mod:`mt3_infer.download`.

Downloads are verified (sha256), resumable, atomic and locked.  0.2.0's git
clones (``clone_git_lfs_repo``) and ``huggingface_hub`` downloads are gone:
every checkpoint is one plain HTTPS file; ``download_checkpoint`` accepts the
``"url"`` source type and says what to use for the others.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Union

from .. import download as _download
from ..exceptions import CheckpointDownloadError


def _progress_adapter(callback: Optional[Callable[[int, int, int], None]]):
    """0.2.0's ``urlretrieve`` hook ``(block_num, block_size, total_size)``
    as the package's ``progress(done_bytes, total_bytes)`` callback."""
    if callback is None:
        return None

    def progress(done: int, total: Optional[int]) -> None:
        callback(1, int(done), int(total) if total else -1)

    return progress


def download_file(url: str, output_path: Union[str, os.PathLike], expected_sha256: Optional[str] = None,
                  progress_callback: Optional[Callable[[int, int, int], None]] = None) -> None:
    """Download ``url`` to ``output_path``, checking ``expected_sha256`` when
    given.  ``progress_callback(block_num, block_size, total_size)`` as 0.2.0's
    (called with block_num 1 and block_size = bytes so far); default: a
    progress line on stderr when it is a terminal.  Raises
    :class:`CheckpointDownloadError`; nothing is left at ``output_path`` on
    failure (a ``.part`` file is kept so the next call resumes)."""
    progress = _progress_adapter(progress_callback) if progress_callback is not None else None
    _download.download_file(url, Path(output_path), expected_sha256, progress=progress)


def download_checkpoint(source_type: str, source_url: str, output_path: Union[str, os.PathLike],
                        sha256: Optional[str] = None, **kwargs) -> None:
    """0.2.0's dispatcher: an existing ``output_path`` is kept; ``"url"``
    downloads one file (:func:`download_file`).  ``"git_lfs"`` and
    ``"huggingface"`` raise :class:`CheckpointDownloadError` pointing to
    ``mt3_infer.download_model`` (the registry's models) or the file's
    direct URL."""
    output_path = Path(output_path)
    if output_path.is_file() or (output_path.is_dir() and any(output_path.iterdir())):
        return
    if source_type == "url":
        download_file(source_url, output_path, expected_sha256=sha256)
        return
    if source_type in ("git_lfs", "huggingface"):
        raise CheckpointDownloadError(
            f"source type {source_type!r} is not supported by this mt3-infer (no git or huggingface_hub "
            "downloads): use mt3_infer.download_model(<model>) for the registered models, or "
            "download_checkpoint('url', <direct file URL>, ...), e.g. "
            "https://huggingface.co/<repo>/resolve/main/<file>"
        )
    raise CheckpointDownloadError(f"Unsupported source type: {source_type}\nSupported types: url")


__all__ = ["download_file", "download_checkpoint"]

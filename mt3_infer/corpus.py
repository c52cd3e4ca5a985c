"""Corpus transcription on Ray Data: one model per worker, resumable, nothing lost.

``transcribe_corpus(inputs, output_dir, model=...)`` turns a list of audio
files (files, folders, globs) into, under ``output_dir``:

* ``midi/<name>.mid`` per input (the layout of ``mt3-infer -o DIR``: a folder's
  files keep their sub-folders), written to a temporary name and renamed;
* ``notes/<name>.parquet`` per input: one row per note (``source``, ``onset``,
  ``offset``, ``pitch``, ``velocity``, ``program``, ``is_drum``); the folder is
  the notes dataset (``pyarrow.dataset.dataset(out / "notes")`` or
  ``ray.data.read_parquet``);
* ``manifest/<name>.json`` per input, written last (atomically): status
  ``ok``/``error`` with the message, duration, note count, seconds, model id,
  checkpoint sha256 and the source's size and mtime; at the end all rows are
  gathered into ``manifest.parquet``.

The inputs become a Ray dataset; ``map_batches`` runs a callable class whose
actors load the model **once each** and transcribe each batch of files
through the cross-file queue (``adapter.transcribe_many``: the files of a
batch share one decoder).  Works with a local ``ray.init()`` (the default) and
with ``address=`` of an existing cluster.  Ray restarts an actor whose
process dies and retries its batch; outputs are written atomically and are
the same bytes on a retry, so every input ends with exactly one manifest row.

Resume (default): an input whose manifest row says ``ok`` for the same source
(size and mtime) and whose outputs exist is skipped; a changed file is done
again; an ``error`` row is retried.  Failures are per file: a corrupt input
becomes an ``error`` row, never a failed job.

``ray`` is an optional extra (``pip install 'mt3-infer[ray]'``); importing
:mod:`mt3_infer` never imports it.
"""
from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .exceptions import DependencyError

__all__ = ["CorpusSummary", "Transcriber", "transcribe_corpus", "plan_corpus"]

_RAY_HINT = "Corpus transcription runs on Ray Data: pip install 'mt3-infer[ray]' (ray[data] and pyarrow)."


def _import_ray():
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise DependencyError(f"{_RAY_HINT} ({exc})") from exc
    return ray


@dataclass
class CorpusSummary:
    """What a run did: counts, audio hours, wall time, and where it wrote."""

    output_dir: Path
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    errors: List[Tuple[str, str]] = field(default_factory=list)  # (source, message)

    @property
    def audio_hours_per_hour(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def line(self) -> str:
        return (f"{self.ok} ok, {self.failed} failed, {self.skipped} skipped; "
                f"{self.audio_seconds / 3600:.3f} h of audio in {self.wall_seconds:.1f} s "
                f"({self.audio_hours_per_hour:.1f} h of audio per hour)")


def _expand(inputs: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]) -> List[Tuple[Path, Optional[Path]]]:
    """Files, folders (searched recursively) and globs -> (file, its folder root)."""
    from .cli import UsageError, _expand_inputs

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    raw: List[str] = []
    for item in inputs:
        s = os.fspath(item)
        if glob.has_magic(s) and not os.path.exists(s):
            hits = sorted(glob.glob(s, recursive=True))
            if not hits:
                raise UsageError(f"No files match {s!r}")
            raw.extend(hits)
        else:
            raw.append(s)
    return _expand_inputs(raw, recursive=True)


def plan_corpus(inputs, output_dir) -> List[Dict[str, str]]:
    """One record per input: ``source`` (absolute), ``name`` (relative output
    stem under ``output_dir``: the CLI's ``-o DIR`` layout)."""
    from .cli import _plan_outputs

    files = _expand(inputs)
    root = Path(output_dir)
    seen, out = set(), []
    for (src, _), mid in zip(files, _plan_outputs(files, str(root) + os.sep)):
        src = src.resolve()
        if src not in seen:
            seen.add(src)
            out.append({"source": str(src), "name": mid.relative_to(root).with_suffix("").as_posix()})
    return out


def _source_id(path: str) -> Dict[str, int]:
    st = os.stat(path)
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def _paths(out: Path, name: str) -> Dict[str, Path]:
    return {"midi": out / "midi" / (name + ".mid"), "notes": out / "notes" / (name + ".parquet"),
            "manifest": out / "manifest" / (name + ".json")}


def _is_done(out: Path, rec: Dict[str, str], model_id: str) -> bool:
    p = _paths(out, rec["name"])
    try:
        row = json.loads(p["manifest"].read_text())
        src = _source_id(rec["source"])
    except (OSError, ValueError):
        return False
    return (row.get("status") == "ok" and row.get("source") == rec["source"] and row.get("model") == model_id
            and row.get("size") == src["size"] and row.get("mtime_ns") == src["mtime_ns"]
            and p["midi"].is_file() and p["notes"].is_file())


def _write_json(path: Path, doc: Dict[str, Any]) -> None:
    from .utils.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(doc, f, sort_keys=True)
            f.write("\n")


def _write_notes(path: Path, source: str, notes) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .utils.atomic import atomic_path

    cols = {"source": pa.array([source] * len(notes), pa.string())}
    for name in notes.dtype.names:
        cols[name] = pa.array(notes[name])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(cols), tmp)


class Transcriber:
    """The callable class of ``map_batches``: the model is loaded once per
    actor; each call transcribes one batch of files through one shared decoder."""

    def __init__(self, output_dir: str, model: str, load_kwargs: Dict[str, Any], call_kwargs: Dict[str, Any]):
        from . import api, registry

        self.out = Path(output_dir)
        self.model_id = registry.resolve_model_name(model)
        self.adapter = api.load_model(self.model_id, cache=False, **load_kwargs)
        self.call = dict(call_kwargs)
        # the checkpoint's sha256, recorded in the loaded network's metadata at export (no re-hashing)
        self.sha256 = (self.adapter.model or {}).get("source_sha256")

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, List[Any]]:
        sources = [str(s) for s in batch["source"]]
        names = [str(n) for n in batch["name"]]
        t0 = time.monotonic()
        results = self.adapter.transcribe_many(sources, notes=True, stats=True, **self.call)
        per_file = (time.monotonic() - t0) / max(len(sources), 1)
        rows: Dict[str, List[Any]] = {k: [] for k in ("source", "name", "status", "message", "seconds_audio",
                                                       "notes", "seconds")}
        for src, name, res in zip(sources, names, results):
            row = self._finish(src, name, res, per_file)
            for k in rows:
                rows[k].append(row[k])
        return rows

    def _finish(self, src: str, name: str, res, seconds: float) -> Dict[str, Any]:
        from .utils.atomic import atomic_path

        p = _paths(self.out, name)
        try:
            ident = _source_id(src)
        except OSError:
            ident = {"size": None, "mtime_ns": None}
        row = {"source": src, "name": name, "model": self.model_id, "checkpoint_sha256": self.sha256,
               "seconds": round(seconds, 4), **ident}
        if isinstance(res, BaseException):
            row.update(status="error", message=f"{type(res).__name__}: {res}", seconds_audio=0.0, notes=0)
        else:
            data, notes, st = res
            try:
                p["midi"].parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(p["midi"]) as tmp:
                    with open(tmp, "wb") as f:
                        f.write(data)
                _write_notes(p["notes"], src, notes)
                row.update(status="ok", message="", seconds_audio=st["samples_16k"] / 16000.0, notes=len(notes))
            except OSError as exc:
                row.update(status="error", message=f"{type(exc).__name__}: {exc}", seconds_audio=0.0, notes=0)
        _write_json(p["manifest"], row)  # last: the row means the outputs are in place
        return row


def transcribe_corpus(inputs, output_dir, model: str = "default", *, address: Optional[str] = None,
                      workers: Optional[int] = None, threads_per_worker: int = 1, gpus_per_worker: float = 0,
                      files_per_batch: int = 4, resume: bool = True, checkpoint_path: Optional[str] = None,
                      device: str = "auto", progress: Any = None, max_new_tokens: Optional[int] = None,
                      batch_size: Optional[int] = None, worker_class: type = None,
                      **model_kwargs: Any) -> CorpusSummary:
    """Transcribe every input into ``output_dir`` on Ray Data (see the module
    docstring for the layout).

    ``address``: an existing Ray cluster (``ray.init(address=...)``); None: a
    running local Ray, else a new local one.  ``workers``: actors (default:
    the cluster's CPUs // ``threads_per_worker``); each holds one model and
    uses ``threads_per_worker`` CPUs (its network threads) and
    ``gpus_per_worker`` GPUs.  ``files_per_batch``: files per
    ``transcribe_many`` call.  ``resume``: skip inputs already done (same
    source size and mtime, outputs present).  ``progress``: None/True (a
    files bar on a terminal), False, or ``callable(done, total)``.  Other
    keywords go to :func:`mt3_infer.load_model` (e.g. ``dtype``).
    ``worker_class``: a subclass of the per-actor transcriber
    (``mt3_infer.corpus.Transcriber``), e.g. to write more per file.
    Returns a :class:`CorpusSummary`."""
    from . import registry
    from .utils import progress as progress_helper

    ray = _import_ray()
    if threads_per_worker < 1 or files_per_batch < 1:
        raise ValueError("threads_per_worker and files_per_batch must be >= 1")
    out = Path(output_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    model_id = registry.resolve_model_name(model)
    plan = plan_corpus(inputs, out)
    todo = [r for r in plan if not (resume and _is_done(out, r, model_id))]
    summary = CorpusSummary(output_dir=out, skipped=len(plan) - len(todo))
    t0 = time.monotonic()
    if todo:
        import logging

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the files bar below is the progress
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True,
                     **({} if address else {"num_cpus": max(os.cpu_count() or 1, threads_per_worker)}))
        if workers is None:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            workers = max(1, cpus // threads_per_worker)
        load = dict(model_kwargs, device=device, num_threads=threads_per_worker)
        if checkpoint_path is not None:
            load["checkpoint_path"] = checkpoint_path
        call = {k: v for k, v in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size)) if v is not None}
        ds = ray.data.from_items(todo, override_num_blocks=max(1, min(len(todo), workers * 4)))
        rows = ds.map_batches(
            worker_class or Transcriber, batch_size=files_per_batch, batch_format="numpy",
            fn_constructor_kwargs={"output_dir": str(out), "model": model_id, "load_kwargs": load,
                                   "call_kwargs": call},
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(todo))),
            num_cpus=threads_per_worker, num_gpus=gpus_per_worker or None)
        draw, callback = progress_helper.resolve(progress, none="tty", true="tty", what="files_done, files_total")
        bar = progress_helper.Bar(len(todo), "files", lambda d, t, _s: f"[{d}/{t}] files", unit="file") \
            if draw else None
        done = 0
        for row in rows.iter_rows():
            done += 1
            if row["status"] == "ok":
                summary.ok += 1
                summary.audio_seconds += float(row["seconds_audio"])
            else:
                summary.failed += 1
                summary.errors.append((str(row["source"]), str(row["message"])))
            if callback is not None:
                callback(done, len(todo))
            elif bar is not None:
                bar.update_to(done)
        if bar is not None:
            bar.close()
    summary.wall_seconds = time.monotonic() - t0
    _gather_manifest(out, plan)
    return summary


def _gather_manifest(out: Path, plan: List[Dict[str, str]]) -> None:
    """manifest.parquet: the manifest rows of every planned input (written atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .utils.atomic import atomic_path

    rows = []
    for rec in plan:
        try:
            rows.append(json.loads(_paths(out, rec["name"])["manifest"].read_text()))
        except (OSError, ValueError):
            continue
    if not rows:
        return
    keys = sorted({k for r in rows for k in r})
    table = pa.table({k: [r.get(k) for r in rows] for k in keys})
    with atomic_path(out / "manifest.parquet") as tmp:
        pq.write_table(table, tmp)

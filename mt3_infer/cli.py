"""``mt3-infer`` command line (console script ``mt3_infer.cli:main``).

Commands::

    mt3-infer transcribe IN [IN ...] [-o OUT] [-m MODEL] [-d DEVICE] [--batch-size N]
                         [--threads N] [--notes-csv] [--notes-json] [-r] [--skip-existing]
                         [--checkpoint PATH] [--no-download] [-q] [-v]
    mt3-infer download [MODEL ...] [--all] [--verify] [--force] [--no-export]
    mt3-infer list [-v]
    mt3-infer info MODEL [--json]
    mt3-infer export [MODEL] [--checkpoint PATH] [-o OUT] [--force]

Exit codes: 0 success; 1 a model, download or file failed; 2 usage error
(bad arguments, unknown model, missing input); 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .utils import progress as progress_helper
from .utils.atomic import atomic_path

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPT = 0, 1, 2, 130

NOTES_JSON_SCHEMA = "mt3-infer.notes/1"
NOTE_FIELDS = ("onset", "offset", "pitch", "velocity", "program", "is_drum")


class UsageError(Exception):
    """Bad command line (exit code 2)."""


# ---------------------------------------------------------------------------
# Output helpers
# ---------------------------------------------------------------------------
def _can_encode(stream, text: str) -> bool:
    enc = getattr(stream, "encoding", None) or "ascii"
    try:
        text.encode(enc)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def _ok(stream=None) -> str:
    stream = stream or sys.stdout
    return "✓" if _can_encode(stream, "✓") else "OK"


def _fail(stream=None) -> str:
    stream = stream or sys.stderr
    return "✗" if _can_encode(stream, "✗") else "x"


def _err(msg: str) -> None:
    print(f"{_fail()} {msg}", file=sys.stderr)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:
        return False


# ---------------------------------------------------------------------------
# Note lists
# ---------------------------------------------------------------------------
def _note_rows(notes) -> List[Dict[str, Any]]:
    rows = []
    for n in notes:
        rows.append({
            "onset": float(n["onset"]),
            "offset": float(n["offset"]),
            "pitch": int(n["pitch"]),
            "velocity": int(n["velocity"]),
            "program": int(n["program"]),
            "is_drum": bool(n["is_drum"]),
        })
    return rows


def write_notes_csv(notes, path) -> None:
    """Write a notes array as CSV: onset,offset,pitch,velocity,program,is_drum
    (seconds with 6 decimals; is_drum as 0/1)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(NOTE_FIELDS)
        for r in _note_rows(notes):
            w.writerow([f"{r['onset']:.6f}", f"{r['offset']:.6f}", r["pitch"], r["velocity"],
                        r["program"], int(r["is_drum"])])


def write_notes_json(notes, path, **meta: Any) -> None:
    """Write a notes array as JSON: {"schema", <meta>..., "notes": [{onset, offset,
    pitch, velocity, program, is_drum}, ...]}."""
    doc: Dict[str, Any] = {"schema": NOTES_JSON_SCHEMA}
    doc.update(meta)
    doc["notes"] = _note_rows(notes)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------------------
# transcribe
# ---------------------------------------------------------------------------
def _expand_inputs(inputs: Sequence[str], recursive: bool) -> List[Tuple[Path, Optional[Path]]]:
    """Files as given; folders → their audio files (sorted).  Returns
    (file, folder it came from or None).  Missing paths are a UsageError."""
    from .audio import AUDIO_EXTENSIONS

    out: List[Tuple[Path, Optional[Path]]] = []
    missing = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            found = sorted(q for q in it if q.is_file() and q.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise UsageError(f"No audio files found in folder: {p}"
                                 + ("" if recursive else " (use -r to search sub-folders)"))
            out.extend((q, p) for q in found)
        elif p.is_file():
            out.append((p, None))
        else:
            missing.append(raw)
    if missing:
        raise UsageError("Input file not found: " + ", ".join(missing))
    return out


def _plan_outputs(files: List[Tuple[Path, Optional[Path]]], output: Optional[str]) -> List[Path]:
    if output is None:
        return [f.with_suffix(".mid") for f, _ in files]
    out = Path(output)
    as_dir = (len(files) > 1 or out.is_dir() or output.endswith(("/", os.sep))
              or out.suffix.lower() not in (".mid", ".midi"))
    if not as_dir:
        return [out]
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {output}: several inputs need an output folder, and this is a file")
    plans: List[Path] = []
    seen: Dict[Path, int] = {}
    for f, root in files:
        rel = f.relative_to(root).parent if root is not None else Path()
        target = out / rel / (f.stem + ".mid")
        if target in seen:
            target = out / rel / (f.name + ".mid")
        seen[target] = 1
        plans.append(target)
    return plans


class _FileProgress:
    """Files done of a multi-file run (:mod:`mt3_infer.utils.progress`)."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.i = 0
        self.name = ""
        self.bar = None
        if enabled and total > 1:
            self.bar = progress_helper.Bar(total, "", lambda d, t, _s: f"[{self.i}/{t}] {self.name[-60:]:<60}",
                                           unit="file")

    def step(self, name: str) -> None:
        self.i += 1
        self.name = name
        if self.bar is not None:
            self.bar.describe(name[-40:])

    def done_one(self) -> None:
        if self.bar is not None:
            self.bar.update_to(self.bar.done + 1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _count_notes(midi) -> int:
    return sum(1 for tr in midi.tracks for m in tr if m.type == "note_on" and m.velocity > 0)


#: Files per adapter.transcribe_many call in the multi-file mode.
CLI_FILES_PER_CALL = 16


def _midi_from_bytes(data: bytes):
    import mido

    return mido.MidiFile(file=io.BytesIO(data))


def cmd_transcribe(args) -> int:
    from . import api, registry
    from .audio import load_audio

    model_id = registry.resolve_model_name(args.model)
    try:
        device = api._normalize_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    files = _expand_inputs(args.inputs, args.recursive)
    outputs = _plan_outputs(files, args.output)
    if args.skip_existing:
        todo = [(f, o) for (f, _), o in zip(files, outputs) if not o.exists()]
        skipped = len(files) - len(todo)
    else:
        todo = [(f, o) for (f, _), o in zip(files, outputs)]
        skipped = 0
    quiet = args.quiet
    # status lines: stderr, and only when it is a terminal (results stay on stdout)
    status = not quiet and _isatty(sys.stderr)
    if skipped and status:
        print(f"Skipping {skipped} file(s) whose MIDI already exists", file=sys.stderr)
    if not todo:
        return EXIT_OK

    kw: Dict[str, Any] = {}
    if args.batch_size is not None:
        kw["batch_size"] = args.batch_size
    if args.threads is not None:
        kw["num_threads"] = args.threads
    if args.max_new_tokens is not None:
        kw["max_new_tokens"] = args.max_new_tokens
    if args.dtype != "float32":
        kw["dtype"] = args.dtype
    if args.decoding is not None:
        kw["decoding"] = args.decoding
    cls = api._import_adapter(model_id)
    try:
        ctor, call = api._split_kwargs(model_id, cls, kw, "transcribe")
    except TypeError as exc:
        raise UsageError(f"option not supported by model '{model_id}': {exc}") from None
    want_notes = args.notes_csv or args.notes_json or args.plot
    if args.plot:
        from .exceptions import DependencyError
        from .plot import require_matplotlib

        try:
            require_matplotlib()  # fail before transcribing, not after
        except DependencyError as exc:
            raise UsageError(f"--plot: {exc}") from None

    if status:
        print(f"Loading model {model_id} (device {device})...", file=sys.stderr)
    t0 = time.monotonic()
    adapter = api.load_model(model_id, checkpoint_path=args.checkpoint, device=device,
                             cache=False, auto_download=not args.no_download, **ctor)
    if status:
        print(f"{_ok(sys.stderr)} Model ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)

    failures = 0
    bar = _FileProgress(len(todo), enabled=_isatty(sys.stderr) and not quiet and not args.no_progress)

    def write_outputs(src, dst, midi, notes, seconds_audio, seconds_taken):
        with atomic_path(dst) as tmp:  # no truncated .mid after Ctrl-C or a crash
            midi.save(tmp)
        extra = []
        if args.notes_csv:
            p = dst.with_suffix(".notes.csv")
            write_notes_csv(notes, p)
            extra.append(str(p))
        if args.notes_json:
            p = dst.with_suffix(".notes.json")
            write_notes_json(notes, p, source=str(src), model=model_id, duration=seconds_audio)
            extra.append(str(p))
        if args.plot:
            from .plot import save_plot

            p = dst.with_suffix(".png")
            save_plot(notes, p, title=f"{os.path.basename(str(src))} ({model_id})")
            extra.append(str(p))
        if not quiet:
            n = len(notes) if notes is not None else _count_notes(midi)
            more = (" + " + ", ".join(extra)) if extra else ""
            print(f"{_ok()} {src} -> {dst}{more} ({n} notes, {seconds_audio:.1f}s audio, "
                  f"{seconds_taken:.1f}s)")

    def failed(src, exc):
        nonlocal failures
        failures += 1
        _err(f"{src}: {type(exc).__name__}: {exc}")
        if args.verbose:
            traceback.print_exception(type(exc), exc, exc.__traceback__)

    # Several files: their segments share one decoder (adapter.transcribe_many), a
    # group of files per call; results and errors stay per file.
    group = CLI_FILES_PER_CALL if hasattr(adapter, "transcribe_many") and len(todo) > 1 else 1
    try:
        for g0 in range(0, len(todo), group):
            part = todo[g0:g0 + group]
            results = None
            if group > 1:
                t1 = time.monotonic()
                bar.step(f"{part[0][0]} (+{len(part) - 1})" if len(part) > 1 else str(part[0][0]))
                results = adapter.transcribe_many([str(src) for src, _ in part], notes=True, stats=True,
                                                  **call)
                took = (time.monotonic() - t1) / len(part)
            for k, (src, dst) in enumerate(part):
                try:
                    if results is not None:
                        if isinstance(results[k], BaseException):
                            raise results[k]
                        data, notes, st = results[k]
                        midi, seconds = _midi_from_bytes(data), st["samples_16k"] / 16000.0
                        notes = notes if want_notes else None
                    else:
                        bar.step(str(src))
                        t1 = time.monotonic()
                        audio, sr = load_audio(src)  # 16 kHz mono, as 0.2.0's load_audio
                        if want_notes and hasattr(adapter, "transcribe_with_notes"):
                            midi, notes = adapter.transcribe_with_notes(audio, sr=sr, **call)
                        else:
                            midi = adapter.transcribe(audio, sr=sr, **call)
                            notes = adapter.transcribe_notes(audio, sr=sr, **call) if want_notes else None
                        seconds = float(audio.shape[0]) / sr
                        took = time.monotonic() - t1
                    write_outputs(src, dst, midi, notes, seconds, took)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    failed(src, exc)
                finally:
                    bar.done_one()
    finally:
        bar.close()
    done = len(todo) - failures
    if not quiet and len(todo) > 1:
        print(f"Transcribed {done}/{len(todo)} file(s)" + (f", {failures} failed" if failures else ""))
    return EXIT_OK if failures == 0 else EXIT_FAIL


# ---------------------------------------------------------------------------
# download / list / info / export
# ---------------------------------------------------------------------------
def cmd_download(args) -> int:
    from . import download, registry

    if args.all:
        models = registry.model_ids()
    else:
        models = [registry.resolve_model_name(m) for m in (args.models or ["default"])]
        models = list(dict.fromkeys(models))
    print(f"Downloading {len(models)} model(s) into {registry.checkpoint_root()}")
    failed = []
    for i, mid in enumerate(models, 1):
        print(f"[{i}/{len(models)}] {mid}")
        try:
            path = download.download_model(mid, force=args.force, verify=args.verify,
                                           export=False if args.no_export else None)
            print(f"  {_ok()} {path}")
            exported = registry.exported_model_path(mid)
            if exported.exists():
                print(f"  {_ok()} exported: {exported}")
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            failed.append(mid)
            print(f"  {_fail(sys.stdout)} {type(exc).__name__}: {exc}")
    print(f"Downloaded: {len(models) - len(failed)}/{len(models)}")
    if failed:
        print(f"Failed: {', '.join(failed)}")
        return EXIT_FAIL
    return EXIT_OK


def _local_state(mid: str) -> Dict[str, Any]:
    from . import download, registry

    path = registry.default_checkpoint_path(mid)
    missing = download.missing_files(mid)
    exported = registry.exported_model_path(mid)
    return {
        "checkpoint_path": str(path),
        "downloaded": not missing,
        "exported_path": str(exported),
        "exported": download.exported_metadata(exported) is not None,
    }


def _speed_text(mid: str, perf: Dict[str, Any]) -> str:
    """The registry's speed figure and where it comes from (0.0: not measured)."""
    from . import registry

    speed = perf.get("speed_x_realtime")
    if not speed:
        return "not measured"
    if registry.is_bundled(mid):
        return f"{speed}x real-time (CPU, benchmarks/bench_accuracy.py)"
    return f"{speed}x real-time (mt3-infer 0.2.0 figure)"


def _source_lines(mid: str) -> List[str]:
    """Where a model's files come from, for `list -v` and `info`: one line
    pair per file, or for a bucket folder (Magenta's) one summary."""
    from . import registry

    spec = registry.listing(mid)
    if spec is not None:
        doc = registry.read_manifest(mid)
        head = f"Source: gs://{spec['bucket']}/{spec['prefix']} (listed at {registry.listing_url(mid)})"
        if doc is None:
            return [head, "  file list not fetched yet (the first download lists the folder)"]
        objs = doc["objects"]
        hashed = sum(1 for o in objs if o.get("md5"))
        return [head, f"  {len(objs)} objects, {sum(o['size'] for o in objs):,} bytes, MD5 for {hashed} "
                      f"(manifest {registry.manifest_path(mid)}, listed {doc.get('listed_at', '?')})"]
    lines = []
    for f in registry.files_for(mid):
        lines.append(f"Source: {f['url'] or 'inside the package (no download)'}")
        lines.append(f"  sha256 {f['sha256']}, {f['size']:,} bytes")
    return lines


def cmd_list(args) -> int:
    from . import registry

    models = registry.list_models()
    print("Available models:\n")
    for mid, info in models.items():
        st = _local_state(mid)
        if registry.is_bundled(mid):
            mark = "bundled, no download" if st["downloaded"] else "bundled file missing: reinstall"
        else:
            mark = "downloaded" + (", exported" if st["exported"] else "") if st["downloaded"] else "not downloaded"
        print(f"  {mid}  [{mark}]")
        print(f"    Name: {info['name']}")
        print(f"    Description: {info['description']}")
        print(f"    Framework: {info['framework']}")
        print(f"    Checkpoint size: {info['checkpoint']['size_mb']} MB")
        if args.verbose:
            perf = info.get("metadata", {}).get("performance", {})
            print(f"    Speed: {_speed_text(mid, perf)}")
            if perf.get("peak_gpu_memory_mb") is not None:
                print(f"    GPU memory: {perf.get('peak_gpu_memory_mb')} MB (mt3-infer 0.2.0 figure)")
            print(f"    Best for: {', '.join(info.get('best_for', []))}")
            print(f"    Checkpoint: {st['checkpoint_path']}")
            for line in _source_lines(mid):
                print(f"    {line}")
        print()
    print("Aliases:")
    for alias, target in registry.aliases().items():
        print(f"  {alias} -> {target}")
    return EXIT_OK


def cmd_info(args) -> int:
    from . import registry

    mid = registry.resolve_model_name(args.model)
    info = registry.get_model_info(mid)
    info.get("checkpoint", {}).pop("generated_files", None)
    st = _local_state(mid)
    files = [{"url": f["url"], "path": str(f["path"]), "sha256": f["sha256"], "size": f["size"],
              **({"md5": f["md5"]} if "md5" in f else {})}
             for f in registry.files_for(mid)]
    if args.json:
        doc = {"id": mid, **info, "local": st, "files": files,
               "aliases": [a for a, t in registry.aliases().items() if t == mid]}
        json.dump(doc, sys.stdout, indent=2)
        print()
        return EXIT_OK
    perf = info["metadata"].get("performance", {})
    print(f"{mid}: {info['name']}")
    print(f"  Description: {info['description']}")
    print(f"  Aliases: {', '.join(a for a, t in registry.aliases().items() if t == mid) or '-'}")
    print(f"  Framework: {info['framework']}")
    print(f"  Adapter: {info['adapter_class']}")
    print(f"  Checkpoint: {st['checkpoint_path']} ({'present' if st['downloaded'] else 'not downloaded'})")
    print(f"  Exported model: {st['exported_path']} ({'present' if st['exported'] else 'not exported'})")
    for line in _source_lines(mid):
        print(f"  {line}")
    if info["checkpoint"].get("licence"):
        print(f"  {info['checkpoint']['licence']}")
    print(f"  Sample rate: {info['metadata'].get('sample_rate')} Hz")
    print(f"  Speed: {_speed_text(mid, perf)}")
    print(f"  Best for: {', '.join(info.get('best_for', []))}")
    return EXIT_OK


def export_model(model: str, checkpoint=None, output=None, force: bool = False, quiet: bool = False):
    """The export command (``mt3-infer export`` and ``python -m mt3_infer.export``):
    the artifact of ``model``'s checkpoint (default: the registry copy), made
    when not current (:func:`mt3_infer.artifact.resolve`); returns its path."""
    from . import artifact, download, registry

    mid = registry.resolve_model_name(model)
    if checkpoint is None and download.missing_files(mid):
        raise FileNotFoundError(
            f"the checkpoint of '{mid}' is not downloaded; run `mt3-infer download {mid}` "
            f"or pass --checkpoint PATH"
        )
    return artifact.resolve(checkpoint, model=mid, output=output, force=force, quiet=quiet)


def cmd_corpus(args) -> int:
    from .corpus import transcribe_corpus

    kw = {}
    if args.dtype:
        kw["dtype"] = args.dtype
    summary = transcribe_corpus(args.inputs, args.output, args.model, address=args.address, workers=args.workers,
                                threads_per_worker=args.threads_per_worker, gpus_per_worker=args.gpus_per_worker,
                                files_per_batch=args.files_per_batch, resume=not args.no_resume,
                                checkpoint_path=args.checkpoint, max_new_tokens=args.max_new_tokens,
                                progress=False if args.quiet else None, **kw)
    for src, msg in summary.errors:
        _err(f"{src}: {msg}")
    print(f"{_ok() if not summary.failed else '!'} {summary.line()}; outputs in {summary.output_dir}")
    return EXIT_OK if not summary.failed else EXIT_FAIL


def cmd_export(args) -> int:
    from . import registry

    out = export_model(args.model, args.checkpoint, args.output, args.force)
    print(f"{_ok()} Exported {registry.resolve_model_name(args.model)}: {out}")
    return EXIT_OK


# ---------------------------------------------------------------------------
# Parser and entry point
# ---------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # exit code 2, like argparse, but through UsageError
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="mt3-infer", description="MT3-family music transcription: audio -> MIDI.")
    p.add_argument("--version", action="version", version=f"mt3-infer {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    t = sub.add_parser("transcribe", help="transcribe audio files or folders to MIDI")
    t.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files and/or folders")
    t.add_argument("-o", "--output", help="output .mid file (one input) or folder")
    t.add_argument("-m", "--model", default="default", help="model id or alias (default: default)")
    t.add_argument("-d", "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    t.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16", "int8"),
                   help="network precision (default float32). Opt-in, faster, outputs differ: bfloat16 on CUDA "
                        "and CPUs with AVX512-BF16, float16 on CUDA, int8 (decoder linears) on the CPU")
    t.add_argument("--checkpoint", help="exported model or checkpoint to use instead of the registry copy")
    t.add_argument("--decoding", choices=("beam1", "greedy"),
                   help="Magenta models: beam1 (t5x beam search with one beam, the Colab's; default) or greedy")
    t.add_argument("--batch-size", type=_positive_int, help="segments per network batch")
    t.add_argument("--threads", type=_positive_int, help="CPU threads for the engine")
    t.add_argument("--max-new-tokens", type=_positive_int, help="decoding cap per segment")
    t.add_argument("--notes-csv", action="store_true", help="also write <output>.notes.csv")
    t.add_argument("--notes-json", action="store_true", help="also write <output>.notes.json")
    t.add_argument("--plot", action="store_true",
                   help="also write <output>.png, a piano roll of the notes (needs mt3-infer[plot])")
    t.add_argument("-r", "--recursive", action="store_true", help="search folders recursively")
    t.add_argument("--skip-existing", action="store_true", help="skip inputs whose .mid exists")
    t.add_argument("--no-download", action="store_true", help="fail instead of downloading a checkpoint")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    t.add_argument("-v", "--verbose", action="store_true", help="print tracebacks on failure")
    t.set_defaults(func=cmd_transcribe)

    d = sub.add_parser("download", help="download (and export) model checkpoints")
    d.add_argument("models", nargs="*", metavar="MODEL", help="model ids or aliases (default: default)")
    d.add_argument("--all", action="store_true", help="every registry model")
    d.add_argument("--verify", action="store_true", help="re-check sha256 of files already present")
    d.add_argument("--force", action="store_true", help="download again even if present")
    d.add_argument("--no-export", action="store_true", help="skip the TorchScript export")
    d.set_defaults(func=cmd_download)

    ls = sub.add_parser("list", help="list models and aliases")
    ls.add_argument("-v", "--verbose", action="store_true", help="performance figures and sources")
    ls.set_defaults(func=cmd_list)

    i = sub.add_parser("info", help="details of one model")
    i.add_argument("model", metavar="MODEL")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=cmd_info)

    c = sub.add_parser("corpus", help="transcribe a corpus on Ray Data (pip install 'mt3-infer[ray]')")
    c.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, folders (searched recursively), globs")
    c.add_argument("-o", "--output", required=True, help="output folder (midi/, notes/, manifest/, manifest.parquet)")
    c.add_argument("-m", "--model", default="default", help="model id or alias (default: %(default)s)")
    c.add_argument("--address", help="address of a running Ray cluster (default: local Ray)")
    c.add_argument("--workers", type=_positive_int, help="actors, one model each (default: CPUs // threads)")
    c.add_argument("--threads-per-worker", type=_positive_int, default=1, help="CPU threads per actor")
    c.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per actor (default 0)")
    c.add_argument("--files-per-batch", type=_positive_int, default=4, help="files per shared decoder call")
    c.add_argument("--max-new-tokens", type=_positive_int, help="decoding cap per segment")
    c.add_argument("--checkpoint", help="checkpoint or exported model (default: the registry copy)")
    c.add_argument("--dtype", choices=("float32", "bfloat16", "float16", "int8"), help="opt-in precision")
    c.add_argument("--no-resume", action="store_true", help="redo inputs already done")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_corpus)

    e = sub.add_parser("export", help="export a checkpoint to TorchScript (needs torch)")
    e.add_argument("model", nargs="?", default="default", metavar="MODEL")
    e.add_argument("--checkpoint", help="checkpoint to export (default: the registry copy)")
    e.add_argument("-o", "--output", help="output file (default: cached beside the checkpoint)")
    e.add_argument("--force", action="store_true", help="export again even if cached")
    e.set_defaults(func=cmd_export)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .exceptions import ModelNotFoundError

    parser = build_parser()
    args = None
    try:
        try:
            args = parser.parse_args(argv)
        except UsageError as exc:
            print(f"mt3-infer: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_OK
        return args.func(args)
    except KeyboardInterrupt:
        _err("Cancelled by user")
        return EXIT_INTERRUPT
    except (UsageError, ModelNotFoundError) as exc:
        _err(f"Error: {exc}")
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_FAIL
    except Exception as exc:
        _err(f"Error: {type(exc).__name__}: {exc}")
        if getattr(args, "verbose", False):
            traceback.print_exc()
        return EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

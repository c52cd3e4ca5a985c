#!/usr/bin/env python3
"""Run many anchor tool invocations in ONE anchor process (start-up costs ~5 s per process).

Usage (with the anchor interpreter):
  anchor_batch.py JOBS.jsonl [--tools-dir DIR]

JOBS.jsonl: one JSON object per line, {"tool": "anchor_decode"|"anchor_features", "argv": [...]}
(argv = the tool's own command-line arguments). The tools are imported from --tools-dir
(default: $MT3_ANCHOR_TOOLS, else this script's folder) and their main() is called with
sys.argv replaced; stdout of each job is its one JSON line. This script prints one JSON line per
job on stdout: {"job": i, "rc": exit status, "result": the tool's JSON (or null)}.
Anchor code is not modified; each job builds fresh adapter objects exactly as a separate run would.
"""
import contextlib
import importlib
import io
import json
import os
import sys
import traceback


def main():
    args = sys.argv[1:]
    tools_dir = os.environ.get("MT3_ANCHOR_TOOLS") or os.path.dirname(os.path.abspath(__file__))
    if "--tools-dir" in args:
        i = args.index("--tools-dir")
        tools_dir = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        raise SystemExit(__doc__)
    sys.path.insert(0, tools_dir)
    with open(args[0]) as f:
        jobs = [json.loads(line) for line in f if line.strip()]
    real_stdout = sys.stdout
    for i, job in enumerate(jobs):
        mod = importlib.import_module(job["tool"])
        buf = io.StringIO()
        rc = 0
        sys.argv = [job["tool"] + ".py"] + [str(a) for a in job["argv"]]
        try:
            with contextlib.redirect_stdout(buf):
                mod.C.run_main(mod.main) if hasattr(mod, "C") else mod.main()
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        except Exception:
            traceback.print_exc()
            rc = 3
        res = None
        for line in buf.getvalue().splitlines()[::-1]:
            try:
                res = json.loads(line)
                break
            except ValueError:
                continue
        real_stdout.write(json.dumps({"job": i, "rc": rc, "result": res}) + "\n")
        real_stdout.flush()


if __name__ == "__main__":
    main()

"""Shared plumbing of the fidelity harness: where the anchor lives and how to call it.

The anchor (pure-Python mt3-infer 0.2.0) runs in its own venv; we only ever talk to it through
subprocesses of its interpreter running the anchor tool kit:

  MT3_ANCHOR_PYTHON  anchor interpreter   (default /work/anchor/venv/bin/python)
  MT3_ANCHOR_TOOLS   anchor tool folder   (default: tools/fidelity/anchor beside this file,
                                           with setup_anchor.sh)
  MT3_FIDELITY_OUT   work/output folder   (default /tmp/mt3_fidelity)
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ANCHOR_PYTHON = os.environ.get("MT3_ANCHOR_PYTHON", "/work/anchor/venv/bin/python")
ANCHOR_TOOLS = os.environ.get("MT3_ANCHOR_TOOLS", os.path.join(HERE, "anchor"))
OUT = os.environ.get("MT3_FIDELITY_OUT", "/tmp/mt3_fidelity")
BATCH = os.path.join(HERE, "anchor", "anchor_batch.py")


def check_anchor():
    if not os.path.exists(ANCHOR_PYTHON):
        sys.exit(f"anchor interpreter not found: {ANCHOR_PYTHON}; build it with "
                 f"tools/fidelity/anchor/setup_anchor.sh and/or set MT3_ANCHOR_PYTHON")
    if not os.path.exists(os.path.join(ANCHOR_TOOLS, "anchor_decode.py")):
        sys.exit(f"anchor tools not found in {ANCHOR_TOOLS}; set MT3_ANCHOR_TOOLS "
                 f"(a copy is in {os.path.join(HERE, 'anchor')})")


def outdir(*parts):
    d = os.path.join(OUT, *parts)
    os.makedirs(d, exist_ok=True)
    return d


def _env(threads=1):
    env = dict(os.environ)
    # keep CPU use modest: the anchor's torch/numpy on one thread
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    env["MT3_ANCHOR_TOOLS"] = ANCHOR_TOOLS
    return env


def run_anchor(tool, argv, log=None, threads=1, timeout=3600):
    """Run one anchor tool (tool = 'anchor_transcribe', ...); returns its JSON summary dict."""
    cmd = [ANCHOR_PYTHON, os.path.join(ANCHOR_TOOLS, tool + ".py")] + [str(a) for a in argv]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=_env(threads), timeout=timeout)
    if log:
        with open(log, "a") as f:
            f.write(" ".join(cmd) + "\n" + p.stderr[-20000:] + "\n")
    res = None
    for line in p.stdout.splitlines()[::-1]:
        try:
            res = json.loads(line)
            break
        except ValueError:
            continue
    if res is None:
        res = {"ok": False, "error": f"no JSON from {tool} (rc {p.returncode}): {p.stderr[-2000:]}"}
    res["_rc"] = p.returncode
    return res


def run_anchor_batch(jobs, workdir, log=None, threads=1):
    """Run [(tool, argv), ...] in one anchor process (anchor_batch.py); list of result dicts."""
    path = os.path.join(workdir, "jobs.jsonl")
    with open(path, "w") as f:
        for tool, argv in jobs:
            f.write(json.dumps({"tool": tool, "argv": [str(a) for a in argv]}) + "\n")
    cmd = [ANCHOR_PYTHON, BATCH, path, "--tools-dir", ANCHOR_TOOLS]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=_env(threads))
    if log:
        with open(log, "w") as f:
            f.write(" ".join(cmd) + "\n" + p.stderr)
    results = [None] * len(jobs)
    for line in p.stdout.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and "job" in r:
            res = r["result"] or {"ok": False, "error": f"rc {r['rc']}"}
            res["_rc"] = r["rc"]
            results[r["job"]] = res
    for i, r in enumerate(results):
        if r is None:
            results[i] = {"ok": False, "error": f"anchor batch died (rc {p.returncode}); see {log}",
                          "_rc": -1}
    return results


class Tally:
    """Counts and mismatch records of one comparison section."""

    def __init__(self, name):
        self.name = name
        self.n = 0
        self.fail = []      # hard failures (byte mismatch, shape mismatch, anchor error)
        self.notes = []     # informational lines

    def ok(self):
        self.n += 1

    def mismatch(self, what):
        self.n += 1
        self.fail.append(what)

    def summary_line(self):
        return f"[{self.name}] {self.n} cases, {len(self.fail)} mismatches"

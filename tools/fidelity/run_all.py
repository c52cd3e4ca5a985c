"""Run every fidelity comparison against the anchor and print one summary (used by `make fidelity`).

Exit status: non-zero if any section reports a mismatch (MIDI bytes, feature shapes, anchor or
our errors where the other side succeeds).  Options are passed on: --n (codec streams per
scheme), --max-new-tokens (end to end); --only codec,features,e2e picks sections.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--only", default="codec,features,e2e")
    a = ap.parse_args()
    sections = {
        "codec": ["fid_codec.py", "--n", str(a.n)],
        "features": ["fid_features.py"],
        "e2e": ["fid_e2e.py", "--max-new-tokens", str(a.max_new_tokens)],
    }
    summary, rc = [], 0
    for name in a.only.split(","):
        cmd = [sys.executable, os.path.join(HERE, sections[name][0])] + sections[name][1:]
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        t0 = time.time()
        p = subprocess.run(cmd)
        last = f"{name}: exit {p.returncode} ({time.time() - t0:.0f} s)"
        summary.append(last)
        rc |= p.returncode != 0
    print("== fidelity summary")
    for s in summary:
        print("  " + s)
    print("FIDELITY " + ("FAILED" if rc else "OK"))
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the libFuzzer targets built by `make fuzz` and print one line per
target: executions, coverage (edges, features), corpus size, and crashes.

    python3 tools/fuzz/run.py [--seconds 20] [--build build/fuzz] [--python PY] wav meta tokens midi
        py_unpickler py_download

Each target starts from its committed seeds (tests/fuzz/corpus/<target>, read
only) and writes what it finds to <build>/corpus_<target> (fresh each run).
A crash, a sanitizer report, a leak or a timeout leaves the input in
<build>/<target>-crash-* and makes this exit 1 with the report's tail.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="+")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "fuzz"))
    ap.add_argument("--python", default=sys.executable, help="the interpreter of the py_* (atheris) targets")
    a = ap.parse_args()
    failed = []
    print(f"{'target':<14}{'seconds':>8}{'executions':>12}{'exec/s':>9}{'cov':>6}{'ft':>7}{'corpus':>8}  result")
    for t in a.targets:
        if t.startswith("py_"):  # atheris: the interpreter runs tools/fuzz/fuzz_py.py <name>
            exe = [a.python, os.path.join(ROOT, "tools", "fuzz", "fuzz_py.py"), t[3:]]
        else:
            exe = [os.path.join(a.build, f"fuzz_{t}")]
        out_dir = os.path.join(a.build, f"corpus_{t}")
        seeds = os.path.join(ROOT, "tests", "fuzz", "corpus", t)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.makedirs(out_dir)
        # rss_limit: a run's memory (a leak or a hostile input's allocation fails it); malloc_limit off, as
        # Python's allocator asks for arenas well above any one object
        cmd = exe + [f"-max_total_time={a.seconds}", "-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048",
                     "-malloc_limit_mb=1000000", f"-artifact_prefix={os.path.join(a.build, t)}-", out_dir, seeds]
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.seconds + 120)
        dt = time.monotonic() - t0
        log = p.stderr
        execs = re.findall(r"stat::number_of_executed_units: (\d+)", log)
        done = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", log)
        cov, ft, corp = done[-1] if done else ("?", "?", "?")
        n = int(execs[-1]) if execs else 0
        ok = p.returncode == 0
        print(f"{t:<14}{dt:8.0f}{n:12d}{n / max(dt, 1e-9):9.0f}{cov:>6}{ft:>7}{corp:>8}  "
              f"{'ok, 0 crashes' if ok else 'FAILED (rc ' + str(p.returncode) + ')'}", flush=True)
        if not ok:
            failed.append(t)
            print("\n".join(log.splitlines()[-40:]), file=sys.stderr)
    if failed:
        print(f"fuzz: crashes in {', '.join(failed)}; inputs in {a.build}/<target>-crash-*; fix them and "
              f"add a regression test (tests/test_fuzz_regressions.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Feature precision against the float64 references of tests/ref_features.py.

Prints, per preset, the worst linear error as a fraction of the segment peak
(the issue-9 figure; goal <= 2e-6), the worst log error on entries >= 1e-3 of
the peak, and the worst error / derived bound ratio (must stay < 1).

    .venv/bin/python tools/precision/feature_error.py [--seconds 6] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))
from ref_features import loud, ref_mt3, ref_yourmt3  # noqa: E402

import mt3_infer  # noqa: E402
from mt3_infer import _core  # noqa: E402


def signals(seconds: float, seed: int):
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    out = {
        "sine440": 0.5 * np.sin(2 * np.pi * 440 * t),
        "chirp": 0.4 * np.sin(2 * np.pi * (50 * t + 0.5 * 7850 / t[-1] * t ** 2)),
        "noise": 0.3 * rng.standard_normal(n),
    }
    clip = np.zeros(n)
    for _ in range(40):  # decaying partials: a crude music-like mixture
        a, f = int(rng.integers(0, n - 4000)), rng.uniform(40, 4000)
        L = int(rng.integers(2000, 16000))
        seg = np.arange(min(L, n - a)) / 16000
        for h in range(1, 6):
            if h * f < 7900:
                clip[a:a + len(seg)] += rng.uniform(0.01, 0.1) / h * np.exp(-3 * seg) * np.sin(
                    2 * np.pi * h * f * seg)
    out["music"] = clip
    return {k: v.astype(np.float32) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(f"cpu: {platform.processor() or platform.machine()}  mt3_infer: {mt3_infer.__file__}")
    print(f"{'preset':<14} {'signal':<8} {'lin err/peak':>13} {'log err (loud)':>15} {'err/bound':>10}")
    worst = {}
    for name, x in signals(a.seconds, a.seed).items():
        for preset in ("mr_mt3", "mt3_pytorch", "mt3_reference", "yourmt3"):
            c_lin = _core.compute_features(x, 16000, preset, stage="linear").astype(np.float64)
            c_log = _core.compute_features(x, 16000, preset, stage="log").astype(np.float64)
            if preset == "yourmt3":
                r_lin, r_log, _, b_lin, b_log, _ = ref_yourmt3(x)
            else:
                r_lin, r_log, b_lin, b_log, _ = ref_mt3(x, preset)
            peak = r_lin.reshape(r_lin.shape[0], -1).max(axis=1)
            rel = (np.abs(c_lin - r_lin).reshape(len(peak), -1).max(axis=1) / np.maximum(peak, 1e-300)).max()
            m = loud(r_lin)
            lg = np.abs(c_log - r_log)[m].max()
            ratio = max((np.abs(c_lin - r_lin) / np.where(b_lin > 0, b_lin, np.inf)).max(),
                        (np.abs(c_log - r_log) / np.where(b_log > 0, b_log, np.inf))[m].max())
            print(f"{preset:<14} {name:<8} {rel:13.3g} {lg:15.3g} {ratio:10.3g}")
            w = worst.setdefault(preset, [0.0, 0.0, 0.0])
            w[0], w[1], w[2] = max(w[0], rel), max(w[1], lg), max(w[2], ratio)
    print("worst per preset:")
    for p, (rel, lg, ratio) in worst.items():
        print(f"  {p:<14} linear {rel:.3g} of peak   log {lg:.3g}   error/bound {ratio:.3g}")


if __name__ == "__main__":
    main()

"""Feature fidelity: anchor preprocess() vs mt3_infer.compute_features(..., preset=...).

Cases: mr_mt3 at 16 kHz; mt3_pytorch (librosa soxr_hq resampling) and yourmt3 (torchaudio sinc)
at 16 kHz, 44.1 kHz and 22.05 kHz; signals: sine, noise, chirp, music-like mixture, stereo mixture,
near-silence with digital zeros.  Audio and both outputs are saved under
$MT3_FIDELITY_OUT/features/<case>/ (audio.npy, anchor.npy, ours.npy).

Reported per case: shapes (must be equal), max |error| overall and restricted to values within a
factor 1e3 of the segment maximum (log value >= segment max - ln 1e3).  YourMT3 features are
min/max-normalised log magnitudes; their errors are also reported in log units, using each
segment's log range recomputed in float64 from the anchor's own segments.
Usage: python tools/fidelity/fid_features.py [--seconds 5.3]
"""
import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

import mt3_infer  # noqa: E402

LOG1E3 = math.log(1e3)
CONFIGS = [("mr_mt3", 16000, None), ("mt3_pytorch", 16000, "soxr_hq"), ("mt3_pytorch", 44100, "soxr_hq"),
           ("mt3_pytorch", 22050, "soxr_hq"), ("yourmt3", 16000, "sinc"), ("yourmt3", 44100, "sinc"),
           ("yourmt3", 22050, "sinc")]
WARN_LOG_ERR = 1e-3  # masked log-domain error above this is flagged (not a failure)


def signals(sr, seconds, rng):
    n = int(seconds * sr)
    t = np.arange(n) / sr
    out = {}
    out["sine"] = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    out["noise"] = (0.1 * rng.standard_normal(n)).astype(np.float32)
    f0, f1 = 50.0, min(7900.0, 0.45 * sr)
    k = math.log(f1 / f0) / seconds
    out["chirp"] = (0.4 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)).astype(np.float32)
    mix = np.zeros(n)
    for _ in range(24):  # harmonic notes with decaying envelopes + noise bursts (drum-like)
        on = rng.uniform(0, seconds - 0.2)
        dur = rng.uniform(0.1, 1.5)
        f = 440.0 * 2 ** ((rng.integers(36, 90) - 69) / 12)
        m = (t >= on) & (t < on + dur)
        env = np.exp(-(t[m] - on) * rng.uniform(1, 8))
        for h in range(1, 6):
            if f * h < 0.45 * sr:
                mix[m] += 0.08 / h * env * np.sin(2 * np.pi * f * h * (t[m] - on))
    for _ in range(12):
        on = rng.uniform(0, seconds - 0.1)
        m = (t >= on) & (t < on + 0.08)
        mix[m] += 0.2 * rng.standard_normal(m.sum()) * np.exp(-(t[m] - on) * 40)
    out["music"] = mix.astype(np.float32)
    st = np.stack([mix, np.roll(mix, 1234) * 0.7], axis=1)
    out["stereo"] = st.astype(np.float32)
    q = (1e-4 * rng.standard_normal(n)).astype(np.float32)
    q[n // 3: n // 2] = 0.0
    out["quiet_zeros"] = q
    return out


def ymt3_log_ranges(segs):
    """Per-segment (lo, hi, normalised features) of ln(|STFT| + 1e-5) in float64 (spec yourmt3 §3)."""
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2048) / 2048)
    res = []
    for s in segs[:, 0, :].astype(np.float64):
        xp = np.pad(s, 1024, mode="reflect")
        fr = np.lib.stride_tricks.sliding_window_view(xp, 2048)[::300][:110]
        X = np.abs(np.fft.rfft(fr * w, axis=1))[:, 1:1025]
        L = np.log(X + 1e-5)
        lo, hi = L.min(), L.max()
        res.append((lo, hi, (L - lo) / (hi - lo + 0.008)))
    return res


def compare(adapter, anc, ours, segs):
    """Returns dict of error measures (log units)."""
    r = {"overall": float(np.max(np.abs(anc.astype(np.float64) - ours))) if anc.size else 0.0}
    masked = 0.0
    if adapter == "yourmt3":
        ranges = ymt3_log_ranges(segs)
        ov_log = 0.0
        r["anchor_vs_f64"] = r["ours_vs_f64"] = 0.0
        for i, (lo, hi, ref) in enumerate(ranges):
            scale = hi - lo + 0.008
            d = np.abs(anc[i].astype(np.float64) - ours[i]) * scale
            ov_log = max(ov_log, float(d.max()))
            m = anc[i] >= anc[i].max() - LOG1E3 / scale
            masked = max(masked, float(d[m].max()))
            r["anchor_vs_f64"] = max(r["anchor_vs_f64"], float((np.abs(anc[i] - ref) * scale)[m].max()))
            r["ours_vs_f64"] = max(r["ours_vs_f64"], float((np.abs(ours[i] - ref) * scale)[m].max()))
        r["overall_log"] = ov_log
    else:
        eps = 1e-6 if adapter == "mt3_pytorch" else 0.0
        r["lin_rel"] = 0.0
        for i in range(anc.shape[0]):
            d = np.abs(anc[i].astype(np.float64) - ours[i])
            m = anc[i] >= anc[i].max() - LOG1E3
            masked = max(masked, float(d[m].max()))
            # linear mel energy recovered from the logs (float32 logs carry ~1e-6 relative)
            la = np.exp(anc[i].astype(np.float64)) - eps
            lo = np.exp(ours[i].astype(np.float64)) - eps
            r["lin_rel"] = max(r["lin_rel"], float(np.abs(la - lo).max() / la.max()))
    r["masked"] = masked
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    C.check_anchor()
    tally = C.Tally("features")
    base = C.outdir("features")
    jobs, meta = [], []
    for adapter, sr, resampler in CONFIGS:
        rng = np.random.default_rng(a.seed + sr)
        for name, x in signals(sr, a.seconds, rng).items():
            d = os.path.join(base, f"{adapter}_{sr}_{name}")
            os.makedirs(d, exist_ok=True)
            np.save(os.path.join(d, "audio.npy"), x)
            argv = ["--adapter", adapter, "--audio", os.path.join(d, "audio.npy"), "--sr", sr,
                    "--out", os.path.join(d, "anchor.npy")]
            if adapter == "yourmt3":
                argv += ["--segments-out", os.path.join(d, "segments.npy")]
            jobs.append(("anchor_features", argv))
            meta.append((adapter, sr, resampler, name, d, x))
    t0 = time.time()
    results = C.run_anchor_batch(jobs, base, log=os.path.join(base, "anchor_stderr.log"))
    t_anchor = time.time() - t0
    worst = {}
    print(f"  {'case':34s} {'shape':>16s} {'max|err| masked':>16s} {'overall':>10s}")
    for (adapter, sr, resampler, name, d, x), res in zip(meta, results):
        case = f"{adapter}@{sr} {name}"
        if not res.get("ok"):
            tally.mismatch(f"{case}: anchor failed: {res.get('error')}")
            continue
        anc = np.load(os.path.join(d, "anchor.npy"))
        try:
            ours = mt3_infer.compute_features(x, sr, preset=adapter, resampler=resampler)
        except Exception as e:  # noqa: BLE001
            tally.mismatch(f"{case}: ours raises {type(e).__name__}: {e}")
            continue
        np.save(os.path.join(d, "ours.npy"), ours)
        if anc.shape != ours.shape:
            tally.mismatch(f"{case}: shape anchor {anc.shape} vs ours {ours.shape}; dir {d}")
            continue
        if not np.all(np.isfinite(ours)):
            tally.mismatch(f"{case}: non-finite values in ours; dir {d}")
            continue
        segs = np.load(os.path.join(d, "segments.npy")) if adapter == "yourmt3" else None
        r = compare(adapter, anc, ours, segs)
        tally.ok()
        extra = (f" (normalised overall {r['overall']:.2e}; masked vs float64 reference: anchor "
                 f"{r['anchor_vs_f64']:.2e}, ours {r['ours_vs_f64']:.2e})") \
            if adapter == "yourmt3" else f"  linear {r['lin_rel']:.2e} of peak"
        print(f"  {case:34s} {str(anc.shape):>16s} {r['masked']:16.3e} "
              f"{r.get('overall_log', r['overall']):10.3e}{extra}")
        key = f"{adapter}@{sr}"
        w = worst.setdefault(key, [0.0, 0.0, 0.0])
        w[0] = max(w[0], r["masked"])
        w[1] = max(w[1], r.get("overall_log", r["overall"]))
        w[2] = max(w[2], r.get("lin_rel", 0.0))
        if r["masked"] > WARN_LOG_ERR:
            tally.notes.append(f"WARN {case}: masked log error {r['masked']:.3e} > {WARN_LOG_ERR}; dir {d}")
    for k, (m, o, lr) in worst.items():
        lin = f"  linear {lr:.2e} of peak" if lr else ""
        print(f"  worst {k:18s} masked {m:.3e}  overall {o:.3e} (log units){lin}")
    print(f"  anchor batch {t_anchor:.1f} s")
    for line in tally.notes:
        print("  " + line)
    for line in tally.fail:
        print("  MISMATCH " + line)
    print(tally.summary_line())
    return 1 if tally.fail else 0


if __name__ == "__main__":
    sys.exit(main())

"""Write training shards of synthetic MT3 data.

    python -m synth.dataset --out DIR --clips 8000 --seed 0 [--workers 2]

(run from ``tools/``, or ``python tools/synth/dataset.py``).  Clip k of the
set has seed ``seed * 10_000_000 + k``: its notes (material.make_clip), its
soundfont and effects all follow from that seed, so the same command gives the
same data on any machine with the same FluidSynth and soundfonts.  Shards of
``--shard-size`` clips are written atomically (``shard_NNNN/`` appears only
when complete) and skipped when present, so an interrupted run resumes.

Each shard holds, for every 2.048 s segment of its clips:
``features.npy`` float16 (n, 256, 512) — the package's ``mt3_reference``
features; ``tokens.npy`` int16 (all rows concatenated, EOS-terminated) with
``offsets.npy`` int64 (n + 1); ``segments.npy`` (clip seed, segment index,
soundfont index, scenario index).  Segments whose row would exceed
``--max-tokens`` tokens are left out (counted in ``shard.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "synth"

from synth import material, render, tokens  # noqa: E402

SEG_DTYPE = np.dtype([("seed", "i8"), ("segment", "i4"), ("soundfont", "i1"), ("scenario", "i1")])


def clip_seed(base_seed: int, k: int) -> int:
    return int(base_seed) * 10_000_000 + int(k)


def make_example(renderer, seed: int, soundfont: str = None, **clip_kw):
    """(audio float32, notes, info, features (S,256,512) float32, token rows)."""
    from mt3_infer.features import compute_features

    notes, info = material.make_clip(seed, **clip_kw)
    rng = np.random.default_rng(np.random.SeedSequence([7, int(seed)]))
    names = list(render.SOUNDFONTS)
    if soundfont is None:
        soundfont = names[int(rng.integers(len(names)))]
    audio = renderer.render(notes, info["duration"], soundfont, rng)
    feats = compute_features(audio, 16000, "mt3_reference")
    rows = tokens.encode_segments(notes, feats.shape[0])
    info = dict(info, soundfont=soundfont)
    return audio, notes, info, feats, rows


def write_shard(out_dir: str, shard: int, base_seed: int, first: int, count: int, max_tokens: int):
    final = os.path.join(out_dir, f"shard_{shard:04d}")
    if os.path.exists(os.path.join(final, "shard.json")):
        return json.load(open(os.path.join(final, "shard.json")))
    tmp = final + f".tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    renderer = render.Renderer()
    feats, toks, segs, dropped, seconds = [], [], [], 0, 0.0
    names = list(render.SOUNDFONTS)
    for k in range(first, first + count):
        seed = clip_seed(base_seed, k)
        audio, notes, info, f, rows = make_example(renderer, seed)
        seconds += len(audio) / 16000
        for i, r in enumerate(rows):
            if len(r) > max_tokens:
                dropped += 1
                continue
            feats.append(f[i].astype(np.float16))
            toks.append(r.astype(np.int16))
            segs.append((seed, i, names.index(info["soundfont"]),
                         material.SCENARIOS.index(info["scenario"])))
    renderer.close()
    np.save(os.path.join(tmp, "features.npy"), np.stack(feats))
    np.save(os.path.join(tmp, "tokens.npy"), np.concatenate(toks))
    np.save(os.path.join(tmp, "offsets.npy"), np.cumsum([0] + [len(t) for t in toks]).astype(np.int64))
    np.save(os.path.join(tmp, "segments.npy"), np.array(segs, SEG_DTYPE))
    meta = {"shard": shard, "base_seed": base_seed, "first_clip": first, "clips": count,
            "segments": len(feats), "dropped_long": dropped, "audio_seconds": round(seconds, 2)}
    with open(os.path.join(tmp, "shard.json"), "w") as fh:
        json.dump(meta, fh)
    os.replace(tmp, final)
    return meta


def _job(args):
    return write_shard(*args)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--clips", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0, help="data seed (held-out sets use others)")
    ap.add_argument("--shard-size", type=int, default=250)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=1023)
    a = ap.parse_args(argv)
    missing = render.missing()
    if missing:
        sys.exit("cannot render: missing " + ", ".join(missing) +
                 f"\ninstall: apt-get install {render.DEBIAN_PACKAGES}; pip install pyfluidsynth")
    os.makedirs(a.out, exist_ok=True)
    jobs = [(a.out, s, a.seed, s * a.shard_size, min(a.shard_size, a.clips - s * a.shard_size),
             a.max_tokens) for s in range((a.clips + a.shard_size - 1) // a.shard_size)]
    t0 = time.time()
    metas = []
    if a.workers > 1:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(a.workers) as pool:
            for m in pool.imap_unordered(_job, jobs):
                metas.append(m)
                print(f"shard {m['shard']}: {m['segments']} segments ({time.time() - t0:.0f} s)", flush=True)
    else:
        for j in jobs:
            metas.append(_job(j))
            print(f"shard {metas[-1]['shard']}: {metas[-1]['segments']} segments", flush=True)
    summary = {"command": " ".join(["python", "tools/synth/dataset.py"] + (argv or sys.argv[1:])),
               "clips": a.clips, "seed": a.seed, "shards": len(jobs),
               "segments": sum(m["segments"] for m in metas),
               "dropped_long": sum(m["dropped_long"] for m in metas),
               "audio_hours": round(sum(m["audio_seconds"] for m in metas) / 3600, 2),
               "wall_s": round(time.time() - t0, 1)}
    with open(os.path.join(a.out, "dataset.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Accuracy and speed of the bundled model (``mt3_small``) on held-out renders.

    .venv/bin/python benchmarks/bench_accuracy.py [--clips 30] [--threads 2]
        [--soundfonts fluidr3,timgm6mb,musescore] [--model PATH] [--json OUT]

For every evaluation set (one per program group of tools/synth/material.py —
piano, electric piano, guitar, bass, strings, organ, brass, drums — plus
2-4-instrument ensembles), --clips clips of 8 s from seeds and note material
never used in training (tools/synth/evalset.py), each rendered with every
soundfont (FluidSynth, random effects), are transcribed by the bundled
network through the package (audio -> C features -> libtorch -> C decoding)
and scored with mir_eval: onset F1 (50 ms, pitch; drums by key) and
onset+offset F1 (pitched notes), program-agnostic, mean over clips.

Printed: a table per set and soundfont, the piano score, the mean over all
sets (the multi-instrument figure), and the real-time factor of the
transcription calls alone (audio seconds / wall seconds, --threads threads).
Needs: apt fluidsynth + soundfonts (see tools/synth/render.py), pip
pyfluidsynth scipy mir_eval.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=30, help="clips per set (each rendered per soundfont)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--soundfonts", default="fluidr3,timgm6mb,musescore")
    ap.add_argument("--sets", default=None, help="comma-separated subset of the sets")
    ap.add_argument("--model", default=None, help="exported network (default: the bundled one)")
    ap.add_argument("--json", default=None, help="write all per-clip scores here")
    a = ap.parse_args(argv)

    from synth import evalset, render
    import mt3_infer
    from mt3_infer.adapters import MT3SmallAdapter

    missing = render.missing()
    if missing:
        sys.exit("cannot render: missing " + ", ".join(missing))
    sfs = a.soundfonts.split(",")
    sets = a.sets.split(",") if a.sets else list(evalset.SETS)
    renderer = render.Renderer(sfs)
    adapter = MT3SmallAdapter(num_threads=a.threads)
    adapter.load_model(a.model)
    rows = []
    audio_s, wall_s = 0.0, 0.0
    for s, k, notes, info in evalset.iter_clips(a.clips, sets):
        for sf in sfs:
            rng = np.random.default_rng(np.random.SeedSequence([11, evalset.eval_seed(s, k), sfs.index(sf)]))
            audio = renderer.render(notes, info["duration"], sf, rng)
            t0 = time.perf_counter()
            est = adapter.transcribe_notes(audio, 16000)
            wall_s += time.perf_counter() - t0
            audio_s += len(audio) / 16000
            sc = evalset.scores(notes, est)
            rows.append({"set": s, "clip": k, "soundfont": sf, "ref_notes": int(len(notes)),
                         "est_notes": int(len(est)), **sc})
        if k == a.clips - 1:
            done = [r for r in rows if r["set"] == s]
            print(f"  {s:15s} onset F1 {np.mean([r['onset_f1'] for r in done]):.3f}", file=sys.stderr, flush=True)

    def mean(sel, key):
        v = [r[key] for r in rows if sel(r) and not np.isnan(r[key])]
        return float(np.mean(v)) if v else float("nan")

    print(f"mt3_small on held-out renders: {a.clips} clips x {len(sfs)} soundfonts per set, "
          f"8 s each, mir_eval 50 ms onset tolerance, program-agnostic")
    head = f"{'set':15s} " + " ".join(f"{sf:>10s}" for sf in sfs) + f" {'all':>8s} {'on+off':>8s}"
    print(head)
    for s in sets:
        cells = [mean(lambda r, s=s, sf=sf: r["set"] == s and r["soundfont"] == sf, "onset_f1") for sf in sfs]
        print(f"{s:15s} " + " ".join(f"{c:10.3f}" for c in cells) +
              f" {mean(lambda r, s=s: r['set'] == s, 'onset_f1'):8.3f}"
              f" {mean(lambda r, s=s: r['set'] == s, 'onoff_f1'):8.3f}")
    per_set = [mean(lambda r, s=s: r["set"] == s, "onset_f1") for s in sets]
    per_set_off = [mean(lambda r, s=s: r["set"] == s, "onoff_f1") for s in sets]
    print(f"{'mean of sets':15s} " + " ".join(
        f"{np.nanmean([mean(lambda r, s=s, sf=sf: r['set'] == s and r['soundfont'] == sf, 'onset_f1') for s in sets]):10.3f}"
        for sf in sfs) + f" {np.nanmean(per_set):8.3f} {np.nanmean(per_set_off):8.3f}")
    if "piano" in sets:
        print(f"solo piano onset F1 {mean(lambda r: r['set'] == 'piano', 'onset_f1'):.3f} "
              f"(basic-pitch 0.4.0 on renders of this kind: 0.86)")
    print(f"multi-instrument onset F1 (mean of {len(sets)} sets) {np.nanmean(per_set):.3f} "
          f"(basic-pitch 0.4.0: 0.70)")
    print(f"speed: {audio_s:.0f} s of audio in {wall_s:.1f} s = {audio_s / wall_s:.1f}x real time "
          f"({a.threads} threads, mt3_infer {mt3_infer.__version__})")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"rows": rows, "audio_s": audio_s, "wall_s": wall_s}, fh, indent=1)


if __name__ == "__main__":
    main()

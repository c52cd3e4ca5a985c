"""Codec/notes/MIDI fidelity: anchor decode() MIDI bytes vs mt3_infer.codec.tokens_to_midi.

For every case the raw token array is saved with the anchor-shaped one, both MIDI files and the
anchor's notes (JSON) under $MT3_FIDELITY_OUT/codec/<scheme>/<case>/, so any mismatch has a
ready reproducer:
    anchor:  $MT3_ANCHOR_PYTHON $MT3_ANCHOR_TOOLS/anchor_decode.py --scheme S --tokens anchor_tokens.npy [--no-auto-filter] --out a.mid
    ours:    mt3_infer.codec.tokens_to_midi(np.load('raw.npy'), S, auto_filter=...)[0]
Usage: python tools/fidelity/fid_codec.py [--n 100] [--seed 0] [--schemes mt3_pytorch,mr_mt3,yourmt3]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import token_streams as T  # noqa: E402

from mt3_infer import codec  # noqa: E402


def mt3_cases(rng, scheme, n):
    """Yield (name, raw (S, L) int64)."""
    starts = codec.default_segment_starts(scheme, 16)
    if scheme == "mt3_pytorch":
        seg_ticks = [int(round(s * 100)) for s in starts]
    else:
        seg_ticks = [204.8 * i for i in range(16)]
    # hand-written edge cases
    yield "edge_all_eos", np.array([[T.EOS, 0, 0], [T.EOS, 0, 0]])
    yield "edge_no_eos_empty_tie", np.array([[T.M_TIE, T.M_TIE, T.M_TIE]])
    yield "edge_unk_mid", np.array([[T.M_TIE, T.M_SHIFT + 10, T.M_PITCH + 60, T.UNK,
                                     T.M_SHIFT + 50, T.M_VEL + 0, T.M_PITCH + 60, T.EOS]])
    yield "edge_pad_before_eos", np.array([[T.M_TIE, T.M_SHIFT + 10, T.M_PITCH + 60, T.PAD,
                                            T.M_SHIFT + 50, T.M_VEL + 0, T.M_PITCH + 60, T.EOS]])
    yield "edge_extra_ids", np.array([[T.M_TIE, 1391, 1490, 1491, 1535, T.M_SHIFT + 3, T.M_DRUM + 36,
                                       T.EOS]])
    yield "edge_late_then_tie", np.array([
        [T.M_TIE, T.M_SHIFT + 20, T.M_PITCH + 60, T.M_SHIFT + 205, T.M_PITCH + 62, T.EOS, 0],
        [T.M_PITCH + 60, T.M_PITCH + 62, T.M_TIE, T.M_SHIFT + 30, T.M_VEL + 0, T.M_PITCH + 60, T.EOS],
        [T.M_PITCH + 62, T.M_TIE, T.M_SHIFT + 1, T.M_VEL + 0, T.M_PITCH + 62, T.EOS, 0]])
    yield "edge_glock_drum_collision", np.array([[
        T.M_TIE, T.M_PROG + 9, T.M_VEL + 1, T.M_PITCH + 40, T.M_SHIFT + 10, T.M_DRUM + 40,
        T.M_SHIFT + 20, T.M_VEL + 0, T.M_PITCH + 40, T.M_DRUM + 40, T.M_SHIFT + 30, T.M_VEL + 1,
        T.M_DRUM + 41, T.M_PITCH + 41, T.EOS]])
    yield "edge_shift0_reset", np.array([[
        T.M_TIE, T.M_SHIFT + 100, T.M_PITCH + 60, T.M_SHIFT + 0, T.M_PITCH + 61, T.M_SHIFT + 50,
        T.M_PITCH + 62, T.M_SHIFT + 1000, T.M_SHIFT + 1000, T.M_VEL + 0, T.M_PITCH + 60, T.EOS]])
    yield "edge_reonset_same_time", np.array([[
        T.M_TIE, T.M_SHIFT + 10, T.M_PITCH + 60, T.M_PITCH + 60, T.M_SHIFT + 11, T.M_PITCH + 60,
        T.M_VEL + 0, T.M_DRUM + 36, T.EOS]])
    for k in range(n):
        S = int(rng.integers(1, 9))
        kind = T.KINDS[k % len(T.KINDS)]
        notes = T.random_notes(rng, int(204.8 * S) + 5, kind)
        late = 0.3 if k % 3 == 0 else 0.0
        rows = T.encode_mt3(rng, notes, seg_ticks[:S], always_state=bool(k % 4 == 1), late_prob=late,
                            shift0_prob=0.2 if k % 5 == 0 else 0.0)
        yield f"real{k:03d}_{kind}_S{S}{'_late' if late else ''}", T.pack_mt3(rng, rows)
        if k % 2 == 0:
            rows2 = T.mutate(rng, rows, T.M_VOCAB, [T.PAD, T.UNK, T.EOS, T.M_TIE], int(rng.integers(1, 8)))
            yield f"mut{k:03d}_{kind}_S{S}", T.pack_mt3(rng, rows2)
        if k % 3 == 0:
            yield f"rand{k:03d}_S{S}", T.pack_mt3(rng, T.random_ids_mt3(rng, S))


def ymt3_cases(rng, n):
    z = np.zeros((1, 13, 4), np.int64)
    z[:, :, 0] = T.Y_TIE
    z[:, :, 1] = T.EOS
    yield "edge_all_empty", z
    a = np.zeros((1, 13, 1), np.int64)
    yield "edge_no_ties_all_pad", a
    e = z.copy()
    e = np.concatenate([e, np.zeros((1, 13, 8), np.int64)], axis=2)
    e[0, 0, :10] = [T.Y_PROG + 0, T.Y_TIE, T.Y_SHIFT + 0, T.Y_VEL + 1, T.Y_PITCH + 60, T.Y_SHIFT + 50,
                    T.Y_VEL + 0, T.Y_PITCH + 60, T.Y_SHIFT + 30, T.Y_PITCH + 61]
    yield "edge_backward_shift_and_shift0", e
    for k in range(n):
        S = int(rng.integers(1, 11))
        kind = T.KINDS[k % len(T.KINDS)]
        notes = T.random_notes(rng, int(204.8 * S) + 5, kind, ymt3=True)
        late = 0.2 if k % 3 == 0 else 0.0
        grid = T.encode_ymt3(rng, notes, S, always_state=bool(k % 4 == 1), late_prob=late)
        yield f"real{k:03d}_{kind}_S{S}", T.pack_ymt3(rng, grid)
        if k % 2 == 0:
            g2 = [T.mutate(rng, row, T.Y_VOCAB, [T.PAD, T.UNK, T.EOS, T.Y_TIE], int(rng.integers(1, 10)))
                  for row in grid]
            yield f"mut{k:03d}_{kind}_S{S}", T.pack_ymt3(rng, g2)
        if k % 3 == 0:
            yield f"rand{k:03d}_S{S}", T.pack_ymt3(rng, T.random_ids_ymt3(rng, S))


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n if len(a) != len(b) else -1


def run(scheme, n, seed, tally):
    rng = np.random.default_rng(seed)
    base = C.outdir("codec", scheme)
    cases = list(ymt3_cases(rng, n) if scheme == "yourmt3" else mt3_cases(rng, scheme, n))
    af_modes = [True, False] if scheme == "mt3_pytorch" else [None]
    jobs, meta = [], []
    for name, raw in cases:
        d = os.path.join(base, name)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "raw.npy"), raw)
        if scheme == "yourmt3":
            anc = raw
        else:
            anc = T.to_anchor_mt3(raw)
        np.save(os.path.join(d, "anchor_tokens.npy"), anc)
        for af in af_modes:
            tag = "" if af is None else ("_af" if af else "_noaf")
            argv = ["--scheme", scheme, "--tokens", os.path.join(d, "anchor_tokens.npy"),
                    "--out", os.path.join(d, f"anchor{tag}.mid"),
                    "--notes-json", os.path.join(d, f"anchor{tag}.json")]
            if af is False:
                argv.append("--no-auto-filter")
            jobs.append(("anchor_decode", argv))
            meta.append((name, d, raw, af, tag))
    t0 = time.time()
    results = C.run_anchor_batch(jobs, base, log=os.path.join(base, "anchor_stderr.log"))
    t_anchor = time.time() - t0
    t_ours = 0.0
    n_notes_total = 0
    stats = {"invalid>0": 0, "dropped>0": 0, "auto_filter changed": 0}
    prev_af = {}
    for (name, d, raw, af, tag), res in zip(meta, results):
        case = f"{scheme}/{name}{tag}"
        t1 = time.time()
        try:
            ours, notes = codec.tokens_to_midi(raw, scheme, auto_filter=bool(af) if af is not None else True)
            err = None
        except Exception as e:  # noqa: BLE001
            ours, notes, err = None, None, f"{type(e).__name__}: {e}"
        t_ours += time.time() - t1
        if ours is not None:
            with open(os.path.join(d, f"ours{tag}.mid"), "wb") as f:
                f.write(ours)
        if not res.get("ok"):
            if err is not None:
                tally.ok()  # both refuse
                tally.notes.append(f"{case}: both raise (anchor: {res.get('error')}; ours: {err})")
            else:
                tally.mismatch(f"{case}: anchor fails ({res.get('error')}) but ours returns {len(ours)} bytes; dir {d}")
            continue
        if err is not None:
            tally.mismatch(f"{case}: ours raises {err}; anchor ok; dir {d}")
            continue
        with open(os.path.join(d, f"anchor{tag}.mid"), "rb") as f:
            anc = f.read()
        with open(os.path.join(d, f"anchor{tag}.json")) as f:
            aj = json.load(f)
        an = aj.get("notes_remapped", aj.get("notes", []))
        stats["invalid>0"] += (aj.get("est_invalid_events", aj.get("invalid_events", 0)) or 0) > 0
        stats["dropped>0"] += (aj.get("est_dropped_events", aj.get("dropped_events", 0)) or 0) > 0
        if af is not None:
            if name in prev_af and prev_af[name] != anc:
                stats["auto_filter changed"] += 1
            prev_af[name] = anc
        n_notes_total += len(an)
        if anc == ours:
            tally.ok()
            if len(an) != len(notes):
                tally.notes.append(f"{case}: MIDI equal but note count anchor {len(an)} vs ours {len(notes)}")
        else:
            i = first_diff(anc, ours)
            tally.mismatch(f"{case}: MIDI bytes differ (anchor {len(anc)} B, ours {len(ours)} B, first diff at "
                           f"byte {i}; notes anchor {len(an)} vs ours {len(notes)}); dir {d}")
    tally.notes.append(f"{scheme}: {len(cases)} token arrays, {len(jobs)} decodes, {n_notes_total} anchor notes; "
                       f"anchor batch {t_anchor:.1f} s, ours {t_ours * 1e3:.1f} ms; coverage (anchor decodes): "
                       + ", ".join(f"{k} {v}" for k, v in stats.items() if scheme == "mt3_pytorch" or "auto" not in k))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="realistic streams per scheme (plus mutated/random ones)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--schemes", default="mt3_pytorch,mr_mt3,yourmt3")
    a = ap.parse_args()
    C.check_anchor()
    tally = C.Tally("codec")
    for s in a.schemes.split(","):
        run(s, a.n, a.seed, tally)
    for line in tally.notes:
        print("  " + line)
    for line in tally.fail:
        print("  MISMATCH " + line)
    print(tally.summary_line())
    return 1 if tally.fail else 0


if __name__ == "__main__":
    sys.exit(main())

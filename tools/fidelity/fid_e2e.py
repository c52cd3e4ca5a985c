"""End-to-end fidelity: same checkpoint, same audio, same token cap -> anchor transcribe() vs ours.

Compares MIDI bytes and per-segment generated token counts for MRMT3Adapter, MT3PyTorchAdapter
and YourMT3Adapter (each only if `mt3_infer.adapters` provides it; otherwise reported as skipped).

Checkpoints: random weights in the real formats (make_random_checkpoint.py, run by the anchor),
then the SAME file is transformed for both sides so that greedy decoding emits notes instead of
stopping at once: the LM-head rows of PAD/EOS/UNK are zeroed and the rows of short shifts,
pitches, velocity, tie and a few programs/drums are scaled up (--bias), which makes those logits
win more often.  Files go to $MT3_FIDELITY_OUT/e2e/.
Usage: python tools/fidelity/fid_e2e.py [--max-new-tokens 64] [--seconds 4.5] [--adapters mr_mt3,mt3_pytorch,yourmt3]
"""
import argparse
import importlib
import inspect
import json
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import token_streams as T  # noqa: E402

CLASSES = {"mr_mt3": "MRMT3Adapter", "mt3_pytorch": "MT3PyTorchAdapter", "yourmt3": "YourMT3Adapter"}


def favoured_rows(adapter):
    """{row: factor}: short shifts, pitches, velocities, program 0/33 x1; drums x2, tie x2 (YourMT3 x3)."""
    Y = adapter == "yourmt3"
    sh, pi, ve, ti, pr, dr = ((T.Y_SHIFT, T.Y_PITCH, T.Y_VEL, T.Y_TIE, T.Y_PROG, T.Y_DRUM) if Y else
                              (T.M_SHIFT, T.M_PITCH, T.M_VEL, T.M_TIE, T.M_PROG, T.M_DRUM))
    rows = {r: 1.0 for r in list(range(sh + 1, sh + 60)) + list(range(pi + 36, pi + 90))}
    rows.update({ve: 1.0, ve + 1: 1.0, pr: 1.0, pr + 33: 1.0})
    rows.update({ti: 3.0 if Y else 2.0})  # YourMT3 discards rows without a tie
    rows.update({dr + d: 2.0 for d in range(35, 52)})
    return rows


def bias_checkpoint(adapter, src, dst, factor):
    """Copy checkpoint src -> dst with the LM head transformed (same file for both sides)."""
    import torch
    if adapter == "mt3_pytorch":
        os.makedirs(dst, exist_ok=True)
        shutil.copy(os.path.join(src, "config.json"), os.path.join(dst, "config.json"))
        sfile, dfile = os.path.join(src, "mt3.pth"), os.path.join(dst, "mt3.pth")
    else:
        sfile, dfile = src, dst
    obj = torch.load(sfile, map_location="cpu", weights_only=False)
    sd = obj["state_dict"] if adapter == "yourmt3" else obj
    key = "lm_head.lm_head.weight" if adapter == "yourmt3" else "lm_head.weight"
    w = sd[key].clone()
    w[[0, 1, 2]] = 0.0
    for row, f in favoured_rows(adapter).items():
        w[row] *= factor * f
    sd[key] = w
    torch.save(obj, dfile)


def music(sr, seconds, seed):
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    x = np.zeros(n)
    for _ in range(16):
        on = rng.uniform(0, seconds - 0.3)
        f = 440.0 * 2 ** ((rng.integers(40, 84) - 69) / 12)
        m = (t >= on) & (t < on + rng.uniform(0.2, 1.2))
        x[m] += 0.15 * np.exp(-(t[m] - on) * 3) * np.sin(2 * np.pi * f * (t[m] - on))
    return x.astype(np.float32)


def our_adapter(adapter, ckpt, K, auto_filter=True):
    try:
        mod = importlib.import_module(f"mt3_infer.adapters.{adapter}")
    except ImportError:
        try:
            mod = importlib.import_module("mt3_infer.adapters")
        except ImportError:
            return None, "mt3_infer.adapters not available"
    cls = getattr(mod, CLASSES[adapter], None)
    if cls is None:
        return None, f"mt3_infer.adapters has no {CLASSES[adapter]}"
    ctor = {}
    params = inspect.signature(cls).parameters
    if "max_new_tokens" in params:
        ctor["max_new_tokens"] = K
    if adapter == "mt3_pytorch" and "auto_filter" in params:
        ctor["auto_filter"] = auto_filter
    if "num_threads" in params:
        ctor["num_threads"] = 1
    ad = cls(**ctor)
    ad.load_model(ckpt, device="cpu")
    return ad, ctor


def our_transcribe(ad, ctor, audio, sr, K):
    kw = {}
    if "max_new_tokens" not in ctor:
        if "max_new_tokens" in inspect.signature(ad.transcribe).parameters:
            kw["max_new_tokens"] = K
        else:
            raise TypeError("our adapter accepts max_new_tokens neither in its constructor nor in transcribe()")
    midi = ad.transcribe(audio, sr, **kw)
    tokens = None
    try:  # optional: the anchor-style hooks, if our adapter provides them
        feats = ad.preprocess(audio, sr)
        tokens = ad.forward(feats)
    except Exception:  # noqa: BLE001
        pass
    return midi, tokens


def engine_pipeline(adapter, ck, art, audio, sr, K, auto_filter):
    """Pre-adapter path: export the checkpoint, features -> EngineModel.decode -> codec.
    Returns (midi bytes, ids (S, C, L) raw)."""
    import mt3_infer
    from mt3_infer import _engine, codec
    if not os.path.exists(art):
        if adapter == "yourmt3":
            from mt3_infer.export.yourmt3 import export_checkpoint
            export_checkpoint(ck, art)
        else:
            from mt3_infer.export.mt3 import export_mt3
            export_mt3(ck, art)
    model, _meta = _engine.load_engine_model(art, device="cpu", num_threads=1)
    resampler = {"mt3_pytorch": "soxr_hq", "yourmt3": "sinc"}.get(adapter)
    feats = mt3_infer.compute_features(audio, sr, preset=adapter, resampler=resampler)
    ids = np.asarray(model.decode(feats, max_new_tokens=K, num_threads=1))
    toks = ids if adapter == "yourmt3" else ids[:, 0, :]
    midi, _notes = codec.tokens_to_midi(toks, adapter, auto_filter=auto_filter)
    return midi, ids


def _ymt3_cmp_form(tok):
    """(S*13, L) raw ids with everything from the first EOS on set to -1 (PAD after EOS ignored)."""
    arrs = tok if isinstance(tok, (list, tuple)) else [tok]
    L = max(np.asarray(a).shape[-1] for a in arrs)
    rows = np.concatenate([np.pad(np.asarray(a), ((0, 0), (0, 0), (0, L - np.asarray(a).shape[-1])))
                           .reshape(-1, L) for a in arrs])
    after = np.cumsum(rows == T.EOS, axis=-1) > 0
    return np.where(after, -1, rows)


def midi_bytes(m):
    if isinstance(m, (bytes, bytearray)):
        return bytes(m)
    import io
    buf = io.BytesIO()
    m.save(file=buf)
    return buf.getvalue()


def token_counts(adapter, tok):
    """Generated tokens per (segment[, channel]) before EOS, from forward()-shaped output."""
    if tok is None:
        return None
    if adapter == "yourmt3":
        arrs = tok if isinstance(tok, (list, tuple)) else [tok]
        counts = []
        for a in arrs:
            a = np.asarray(a)
            eos = np.cumsum(a == T.EOS, axis=-1) > 0
            counts += np.sum(~eos & (a != T.PAD), axis=-1).reshape(-1).tolist()
        return counts
    a = np.asarray(tok["tokens"] if isinstance(tok, dict) else tok)
    return np.sum(a >= 0, axis=-1).tolist()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=4.5)
    ap.add_argument("--bias", type=float, default=4.0)
    ap.add_argument("--adapters", default="mr_mt3,mt3_pytorch,yourmt3")
    a = ap.parse_args()
    C.check_anchor()
    tally = C.Tally("e2e")
    base = C.outdir("e2e")
    K = a.max_new_tokens
    mode = "adapters"
    try:
        importlib.import_module("mt3_infer.adapters")
    except ImportError:
        try:
            importlib.import_module("mt3_infer.export.mt3")
            from mt3_infer import _engine
            if _engine.engine_library_path() is None:
                raise ImportError("no engine library")
            mode = "engine"
            print("  mt3_infer.adapters missing: comparing the export + EngineModel.decode + codec pipeline")
        except ImportError:
            print("  skipped: neither mt3_infer.adapters nor the export/engine exist in this tree")
            print(tally.summary_line())
            return 0
    cases = {"mr_mt3": [(16000, True)], "mt3_pytorch": [(16000, True), (44100, True), (16000, False)],
             "yourmt3": [(16000, True), (44100, True)]}
    for adapter in a.adapters.split(","):
        ck_src = os.path.join(base, f"{adapter}_rand" + {"mt3_pytorch": "", "mr_mt3": ".pth",
                                                          "yourmt3": "_last.ckpt"}[adapter])
        ck = os.path.join(base, f"{adapter}_biased" + {"mt3_pytorch": "", "mr_mt3": ".pth",
                                                        "yourmt3": "_last.ckpt"}[adapter])
        if not os.path.exists(ck_src if adapter != "mt3_pytorch" else os.path.join(ck_src, "mt3.pth")):
            r = C.run_anchor("make_random_checkpoint", ["--adapter", adapter, "--out", ck_src, "--seed", "0"],
                             log=os.path.join(base, "anchor_stderr.log"))
            if not r.get("ok"):
                tally.mismatch(f"{adapter}: make_random_checkpoint failed: {r.get('error')}")
                continue
        bias_checkpoint(adapter, ck_src, ck, a.bias)
        for sr, af in cases[adapter]:
            name = f"{adapter}_{sr}{'' if af else '_noaf'}"
            audio = music(sr, a.seconds, seed=sr)
            apath = os.path.join(base, f"audio_{sr}.npy")
            np.save(apath, audio)
            amid = os.path.join(base, f"{name}_anchor.mid")
            atok = os.path.join(base, f"{name}_anchor_tokens" + (".npz" if adapter == "yourmt3" else ".npy"))
            argv = ["--adapter", adapter, "--checkpoint", ck, "--audio", apath, "--sr", sr, "--out", amid,
                    "--max-new-tokens", K, "--tokens-out", atok]
            if not af:
                argv.append("--no-auto-filter")
            t0 = time.time()
            r = C.run_anchor("anchor_transcribe", argv, log=os.path.join(base, "anchor_stderr.log"))
            t_anchor = time.time() - t0
            if not r.get("ok"):
                tally.mismatch(f"{name}: anchor transcribe failed: {r.get('error')}")
                continue
            if adapter == "yourmt3":
                z = np.load(atok)
                anc_tok = [z[k] for k in sorted(z.files, key=lambda s: int(s.split("_")[1]))]
            else:
                anc_tok = np.load(atok)
            try:
                t1 = time.time()
                if mode == "engine":
                    art = os.path.join(base, f"{adapter}_biased.pt")
                    m, ids = engine_pipeline(adapter, ck, art, audio, sr, K, af)
                    tok = ids if adapter == "yourmt3" else T.to_anchor_mt3(ids[:, 0, :])
                    np.save(os.path.join(base, f"{name}_ours_ids.npy"), ids)
                else:
                    ad, ctor = our_adapter(adapter, ck, K, af)
                    if ad is None:
                        print(f"  {name}: skipped ({ctor})")
                        continue
                    m, tok = our_transcribe(ad, ctor, audio, sr, K)
                t_ours = time.time() - t1
            except Exception as e:  # noqa: BLE001
                tally.mismatch(f"{name}: ours raises {type(e).__name__}: {e}")
                continue
            ours = midi_bytes(m)
            omid = os.path.join(base, f"{name}_ours.mid")
            with open(omid, "wb") as f:
                f.write(ours)
            with open(amid, "rb") as f:
                anc = f.read()
            ac, oc = token_counts(adapter, anc_tok), token_counts(adapter, tok)
            line = (f"{name}: anchor {len(anc)} B / {r.get('note_ons')} note-ons, ours {len(ours)} B; tokens "
                    f"anchor {sum(ac)} {'' if oc is None else f'ours {sum(oc)}'} (cap {K}); "
                    f"anchor {t_anchor:.1f} s, ours {t_ours:.1f} s")
            tally.notes.append(line)
            if tok is not None:
                if adapter == "yourmt3":
                    A, O = _ymt3_cmp_form(anc_tok), _ymt3_cmp_form(tok)
                else:
                    A, O = np.asarray(anc_tok), np.asarray(tok)
                L = max(A.shape[1], O.shape[1])
                A = np.pad(A, ((0, 0), (0, L - A.shape[1])), constant_values=-1)
                O = np.pad(O, ((0, 0), (0, L - O.shape[1])), constant_values=-1)
                np.save(os.path.join(base, f"{name}_tokens_anchor_cmp.npy"), A)
                np.save(os.path.join(base, f"{name}_tokens_ours_cmp.npy"), O)
                if A.shape != O.shape or not np.array_equal(A, O):
                    bad = np.argwhere(A != O)
                    tally.notes.append(f"  tokens differ: first at (segment, position) {bad[0].tolist()}, "
                                       f"{len(bad)} positions")
                else:
                    tally.notes.append("  tokens identical")
            if oc is not None and list(ac) != list(oc):
                tally.notes.append(f"  token counts differ per segment: anchor {ac} ours {oc}")
            if anc == ours:
                tally.ok()
            else:
                tally.mismatch(f"{name}: MIDI bytes differ ({amid} vs {omid})")
    for line in tally.notes:
        print("  " + line)
    for line in tally.fail:
        print("  MISMATCH " + line)
    print(tally.summary_line())
    return 1 if tally.fail else 0


if __name__ == "__main__":
    sys.exit(main())

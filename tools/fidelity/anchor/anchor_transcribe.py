#!/usr/bin/env python3
"""Full anchor transcription (adapter.load_model + adapter.transcribe) with a given checkpoint.

Usage:
  anchor_transcribe.py --adapter mt3_pytorch|mr_mt3|yourmt3 --checkpoint PATH --audio x.npy --sr N
                       --out out.mid [--max-new-tokens K] [--no-auto-filter] [--tokens-out T]
                       [--threads 1]

checkpoint: mt3_pytorch -> directory with config.json + mt3.pth; mr_mt3 -> mt3.pth file;
            yourmt3 -> Lightning .ckpt (see make_random_checkpoint.py). Device is always "cpu".
audio: float .npy (n,) or (n, ch); passed unchanged to MT3Base.transcribe (which does the mono mix,
       validation and error wrapping itself). The MIDI written is transcribe()'s mido.MidiFile .save()d.

--max-new-tokens K (a cap for random-weight models, which rarely emit EOS):
  mt3_pytorch / mr_mt3: the adapter calls model.generate(..., max_length=1024); we wrap the
      instance's generate so max_length=K is passed instead. The anchor loop runs max_length steps,
      so each row gets at most K generated tokens after the start token (anchor default 1024).
  yourmt3: sets model.max_total_token_length = K (anchor default 256 = task's per-channel length);
      task_cond_dec_generate yields at most K tokens per channel (1 prefill + K-1 loop steps).
--tokens-out: saves what forward() returned (the input of decode()):
      mt3_pytorch/mr_mt3 -> int64 (S, L) .npy (already post-processed: -3 offset, -1 after EOS);
      yourmt3 -> .npz with arr_0, arr_1, ... = per-batch (B, 13, L) raw-id arrays.
  These feed straight into anchor_decode.py (same scheme) and must reproduce the same MIDI.
--transformers auto|venv|4.45: which transformers to import. auto = the 4.45.2 overlay in
  $MT3_ANCHOR_TF445 (default <anchor dir>/tf445) for yourmt3 (the only range where its vendored T5 decoder runs), the venv's
  4.57.6 for mt3_pytorch/mr_mt3 (which fail on <= 4.49 and on 5.x).
Prints a one-line JSON summary on stdout (anchor prints/tqdm go to stderr).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import _anchor_common as C  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapter", required=True, choices=["mt3_pytorch", "mr_mt3", "yourmt3"])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument("--sr", required=True, type=int)
    p.add_argument("--out", required=True)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--no-auto-filter", action="store_true")
    p.add_argument("--tokens-out")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--transformers", choices=["auto", "venv", "4.45"], default="auto",
                   help="auto: 4.45.2 overlay ($MT3_ANCHOR_TF445 (default <anchor dir>/tf445)) for yourmt3, the venv's 4.57.6 otherwise")
    a = p.parse_args()
    use_overlay = a.transformers == "4.45" or (a.transformers == "auto" and a.adapter == "yourmt3")
    if use_overlay:
        # YourMT3's vendored T5 decoder only runs with transformers <= 4.45 (see README);
        # the MT3-family T5 only with >= 4.5x. Must happen before transformers is imported.
        sys.path.insert(0, C.TF445_DIR)

    import torch
    torch.set_num_threads(a.threads)
    audio = C.load_audio_npy(a.audio)
    captured = {}
    saved = C.quiet_stdout()
    t0 = time.time()
    try:
        if a.adapter == "mt3_pytorch":
            from mt3_infer.adapters.mt3_pytorch import MT3PyTorchAdapter
            ad = MT3PyTorchAdapter(auto_filter=not a.no_auto_filter)
            ad.load_model(a.checkpoint, device="cpu")
            net = ad._model
        elif a.adapter == "mr_mt3":
            from mt3_infer.adapters.mr_mt3 import MRMT3Adapter
            ad = MRMT3Adapter()
            ad.load_model(a.checkpoint, device="cpu")
            net = ad.model
        else:
            from mt3_infer.adapters.yourmt3 import YourMT3Adapter
            ad = YourMT3Adapter()
            ad.load_model(a.checkpoint, device="cpu")
            net = ad.model
        t_load = time.time() - t0

        if a.max_new_tokens is not None:
            K = int(a.max_new_tokens)
            if a.adapter == "yourmt3":
                net.max_total_token_length = K
            else:
                orig_generate = net.generate

                def capped_generate(*args, **kw):
                    kw["max_length"] = K
                    return orig_generate(*args, **kw)

                net.generate = capped_generate

        orig_forward = ad.forward

        def recording_forward(features):
            out = orig_forward(features)
            captured["out"] = out
            return out

        ad.forward = recording_forward
        t1 = time.time()
        midi = ad.transcribe(audio, a.sr)
        t_run = time.time() - t1
        midi.save(a.out)
    except Exception as e:  # report, don't hide
        C.restore_stdout(saved)
        saved = None
        C.summary({"ok": False, "error": f"{type(e).__name__}: {e}"})
        sys.exit(2)
    finally:
        if saved is not None:
            C.restore_stdout(saved)

    out = captured.get("out")
    shape = None
    if a.tokens_out and out is not None:
        if a.adapter == "yourmt3":
            np.savez(a.tokens_out, *[np.asarray(b) for b in out])
            shape = [list(np.asarray(b).shape) for b in out]
        else:
            tok = out["tokens"] if isinstance(out, dict) else out
            tok = np.asarray(tok).astype(np.int64)
            np.save(a.tokens_out, tok)
            shape = list(tok.shape)
    n_on = sum(1 for tr in midi.tracks for m in tr if m.type == "note_on" and m.velocity > 0)
    import transformers
    C.summary({"ok": True, "adapter": a.adapter, "out": a.out, "note_ons": n_on,
               "transformers": transformers.__version__,
               "tokens_shape": shape, "load_s": round(t_load, 2), "transcribe_s": round(t_run, 2)})


if __name__ == "__main__":
    main()

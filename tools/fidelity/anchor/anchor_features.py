#!/usr/bin/env python3
"""The anchor's preprocess() output for one adapter, without loading a network.

Usage:
  anchor_features.py --adapter mr_mt3|mt3_pytorch|yourmt3 --audio x.npy --sr N --out feats.npy
                     [--starts-out starts.npy] [--segments-out segs.npy] [--no-mono]

audio: float32/float64 .npy, shape (n,) or (n, channels). By default a 2-D input is reduced to mono
exactly like MT3Base.transcribe (mean over axis 1, cast back to the input dtype); --no-mono passes it
through unchanged (preprocess itself expects 1-D).

--out:
  mr_mt3      : preprocess()['inputs'] -> float32 (S, 256, 512). sr must be 16000 (the adapter raises
                AudioError otherwise, reported as an error here).
  mt3_pytorch : preprocess() -> (S, 257, 512) in the dtype the anchor returns (float32); resamples with
                librosa.resample when sr != 16000.
  yourmt3     : the model's spectrogram layer applied to preprocess()'s segments, i.e. what
                YourMT3.inference feeds to pre_encoder: float32 (S, 110, 1024). The layer is built
                by get_spectrogram_layer_from_audio_cfg(audio_cfg) with codec "spec", hop 300
                (spec yourmt3 §1.5/§3); it has no weights.
--starts-out: per-segment start times decode() will use (mr_mt3/mt3_pytorch: frame_times[i][0] from
              preprocess; mt3_pytorch decode additionally floors to 10 ms; yourmt3: 32767*i/16000).
--segments-out (yourmt3 only): preprocess()'s raw output, float32 (S, 1, 32767).
Prints a one-line JSON summary on stdout.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import _anchor_common as C  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapter", required=True, choices=["mr_mt3", "mt3_pytorch", "yourmt3"])
    p.add_argument("--audio", required=True)
    p.add_argument("--sr", required=True, type=int)
    p.add_argument("--out", required=True)
    p.add_argument("--starts-out")
    p.add_argument("--segments-out")
    p.add_argument("--no-mono", action="store_true")
    a = p.parse_args()

    audio = C.load_audio_npy(a.audio)
    if not a.no_mono:
        audio = C.mono_like_base(audio)

    import torch
    saved = C.quiet_stdout()
    try:
        if a.adapter == "mr_mt3":
            ad = C.make_mr_mt3_adapter_nomodel()
            res = ad.preprocess(audio, a.sr)
            feats = res["inputs"].numpy()
            starts = np.asarray(res["frame_times"])[:, 0]
        elif a.adapter == "mt3_pytorch":
            ad = C.make_mt3_pytorch_adapter_nomodel()
            feats = ad.preprocess(audio, a.sr)
            starts = np.asarray(ad._last_frame_times)[:, 0]
        else:
            from mt3_infer.models.yourmt3.model.spectrogram import get_spectrogram_layer_from_audio_cfg
            ad = C.make_yourmt3_adapter_nomodel()
            segs = ad.preprocess(audio, a.sr)  # (S, 1, 32767) float32 tensor
            layer, shape = get_spectrogram_layer_from_audio_cfg(C.ymt3_audio_cfg())
            layer.eval()
            with torch.inference_mode():
                feats = layer(segs).numpy()
            if a.segments_out:
                np.save(a.segments_out, segs.numpy())
            starts = np.array([32767 * i / 16000 for i in range(segs.shape[0])])
    finally:
        C.restore_stdout(saved)

    np.save(a.out, feats)
    if a.starts_out:
        np.save(a.starts_out, starts.astype(np.float64))
    C.summary({"ok": True, "adapter": a.adapter, "shape": list(feats.shape), "dtype": str(feats.dtype),
               "out": a.out})


if __name__ == "__main__":
    C.run_main(main)

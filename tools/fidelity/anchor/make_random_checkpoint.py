#!/usr/bin/env python3
"""Random-weight checkpoints in the real upstream formats, built with the anchor's own classes.

Usage:
  make_random_checkpoint.py --adapter mt3_pytorch --out DIR   [--seed 0] [--std S]
      -> DIR/config.json + DIR/mt3.pth   (what MT3PyTorchAdapter.load_model(DIR) reads)
  make_random_checkpoint.py --adapter mr_mt3 --out FILE.pth    [--seed 0] [--std S]
      -> plain torch.save(state_dict) (same format/keys as kunato mt3.pth; MR-MT3 loads strict=False)
  make_random_checkpoint.py --adapter yourmt3 --out FILE.ckpt  [--seed 0] [--std S]
                            [--norm layer_norm|rms_norm]
      -> Lightning-shaped dict {"hyper_parameters": {audio_cfg, model_cfg, shared_cfg, ...},
         "state_dict": ...} for the default variant yptf_moe_nops (task mc13_full_plus_256,
         Space args -enc perceiver-tf -dec multi-t5 -nl 26 -sqr 1 -ff moe -wf 4 -nmoe 8 -kmoe 2
         -act silu -epe rope -rp 1 -ac spec -hop 300 -atc 1). The file name must not contain
         "model.ckpt" (the adapter would then switch to the ymt3plus key, spec yourmt3 §1.1).

--std S: if given, re-draw every floating-point parameter (not buffers) as N(0, S) after the
module's own init (default: keep the module's own random init). Norm weights are re-drawn as
1 + N(0, S) so the network does not collapse.
Prints a one-line JSON summary (key count, parameter count) on stdout.
"""
import argparse
import copy
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _anchor_common as C  # noqa: E402

# kunato pretrained/config.json values (spec mt3-family §3.3)
MT3_CONFIG = {
    "architectures": ["T5ForConditionalGeneration"],
    "d_ff": 1024,
    "d_kv": 64,
    "d_model": 512,
    "decoder_start_token_id": 0,
    "dropout_rate": 0.1,
    "eos_token_id": 1,
    "feed_forward_proj": "gated-gelu",
    "initializer_factor": 1.0,
    "is_encoder_decoder": True,
    "layer_norm_epsilon": 1e-06,
    "model_type": "t5",
    "num_decoder_layers": 8,
    "num_heads": 6,
    "num_layers": 8,
    "pad_token_id": 0,
    "unk_token_id": 2,
    "tie_word_embeddings": False,
    "vocab_size": 1536,
}


def redraw(model, std):
    import torch
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.is_floating_point():
                continue
            if "norm" in name.lower() and p.dim() == 1 and name.endswith("weight"):
                p.copy_(1.0 + std * torch.randn_like(p))
            else:
                p.copy_(std * torch.randn_like(p))


def build_mt3(out, which, std):
    import torch
    from transformers import T5Config
    if which == "mt3_pytorch":
        from mt3_infer.models.mt3_pytorch.t5 import T5ForConditionalGeneration
    else:
        from mt3_infer.models.mr_mt3.t5 import T5ForConditionalGeneration
    cfg = T5Config.from_dict(MT3_CONFIG)
    model = T5ForConditionalGeneration(cfg).eval()
    if std is not None:
        redraw(model, std)
    sd = model.state_dict()
    if which == "mt3_pytorch":
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(MT3_CONFIG, f, indent=2)
        torch.save(sd, os.path.join(out, "mt3.pth"))
    else:
        torch.save(sd, out)
    return sd


def build_ymt3(out, std, norm):
    import torch
    from mt3_infer.models.yourmt3.config.config import model_cfg as dm, shared_cfg as ds
    from mt3_infer.models.yourmt3.model.ymt3 import YourMT3
    from mt3_infer.models.yourmt3.utils.task_manager import TaskManager

    audio_cfg = C.ymt3_audio_cfg()
    model_cfg = copy.deepcopy(dm)
    shared_cfg = copy.deepcopy(ds)
    model_cfg["encoder_type"] = "perceiver-tf"
    model_cfg["decoder_type"] = "multi-t5"
    enc = model_cfg["encoder"]["perceiver-tf"]
    enc.update({
        "num_latents": 26, "sca_use_query_residual": True, "ff_layer_type": "moe",
        "ff_widening_factor": 4, "moe_num_experts": 8, "moe_topk": 2, "hidden_act": "silu",
        "position_encoding_type": "rope", "rope_partial_pe": True, "attention_to_channel": True,
        "layer_norm_type": norm,
    })
    tm = TaskManager(task_name=C.YMT3_TASK)
    # first construction resolves every "auto" value in place (as at training time) ...
    YourMT3(audio_cfg=audio_cfg, model_cfg=model_cfg, shared_cfg=shared_cfg, task_manager=tm)
    resolved_audio, resolved_model = copy.deepcopy(audio_cfg), copy.deepcopy(model_cfg)
    # ... the second one is built exactly as inference_loader will rebuild it from the hparams
    model = YourMT3(audio_cfg=copy.deepcopy(resolved_audio), model_cfg=copy.deepcopy(resolved_model),
                    shared_cfg=copy.deepcopy(shared_cfg), task_manager=TaskManager(task_name=C.YMT3_TASK)).eval()
    if std is not None:
        redraw(model, std)
    sd = model.state_dict()
    ckpt = {
        "hyper_parameters": {
            "audio_cfg": resolved_audio,
            "model_cfg": resolved_model,
            "shared_cfg": shared_cfg,
            "eval_vocab": None,
            "eval_drum_vocab": None,
            "eval_subtask_key": "default",
            "onset_tolerance": 0.05,
            "write_output_vocab": None,
        },
        "state_dict": sd,
        "pytorch-lightning_version": "random-weights (anchor tool kit)",
    }
    torch.save(ckpt, out)
    return sd


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapter", required=True, choices=["mt3_pytorch", "mr_mt3", "yourmt3"])
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--std", type=float)
    p.add_argument("--norm", default="layer_norm", choices=["layer_norm", "rms_norm"])
    a = p.parse_args()
    import torch
    torch.manual_seed(a.seed)
    saved = C.quiet_stdout()
    try:
        if a.adapter == "yourmt3":
            if "model.ckpt" in os.path.basename(a.out):
                raise SystemExit("file name must not contain 'model.ckpt' (adapter would pick ymt3plus)")
            sd = build_ymt3(a.out, a.std, a.norm)
        else:
            sd = build_mt3(a.out, a.adapter, a.std)
    finally:
        C.restore_stdout(saved)
    ptrs = {}
    for k, v in sd.items():
        ptrs.setdefault(v.data_ptr(), v.numel())
    C.summary({"ok": True, "adapter": a.adapter, "out": a.out, "keys": len(sd),
               "distinct_values": int(sum(ptrs.values()))})


if __name__ == "__main__":
    C.run_main(main)

"""Small exported models for end-to-end tests (CLI, examples, API)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fixtures_mt3  # noqa: E402


def small_exported_model(tmp_path, model="mr_mt3"):
    """Export a small random-weight MT3 network (one that emits notes) and
    return the path of the TorchScript file."""
    from mt3_infer.export import export_checkpoint

    if model not in ("mr_mt3", "mt3_pytorch"):
        raise ValueError(f"no small fixture for {model!r}")
    ckpt = fixtures_mt3.write_checkpoint(os.path.join(str(tmp_path), "small_mt3"),
                                         **fixtures_mt3.MUSICAL)
    out = os.path.join(str(tmp_path), f"{model}_small.mt3i.pt")
    export_checkpoint(model, ckpt, out)
    return out

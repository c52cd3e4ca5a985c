"""AOTInductor (torch.export -> .pt2) against the TorchScript artifact, on the
same network and the same inputs: the evaluation of issue 13 item 4.

    .venv/bin/python benchmarks/bench_aoti.py [--rows 51] [--chunk 8] [--threads N]
        [--workdir DIR] [--positions 0,64,128,255]

One run, this machine, --threads threads, fp32:

1. a full-size random-weight MT3 checkpoint (upstream layout) is exported to
   TorchScript as the package does (``export.mt3.export_mt3``);
2. the same ``MT3Runtime`` (eager, weights from that file) is captured with
   ``torch.export`` twice -- the encoder (``encode``: features -> cross K/V,
   batch dynamic) and one decoder step (``step``: rows dynamic, the position
   a tensor so one graph serves every step, the self-attention cache updated
   in place) -- and compiled ahead of time with
   ``torch._inductor.aoti_compile_and_package`` (C++ kernels for this CPU);
3. both forms run the encoder on --chunk segments and the step at --rows rows
   at each of --positions (the cache filled to that position), median of 5;
   outputs are compared (max |difference| of the cross K/V; next ids).

Printed: the compile time, each form's milliseconds, and the ratio
TorchScript / AOTInductor (> 1: AOTInductor faster), plus the estimate for a
180 s clip at 256 tokens (88 segments; 22528 row-steps at --rows rows).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))


def median_ms(f, reps=5):
    f()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=51)
    p.add_argument("--chunk", type=int, default=8)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--positions", default="0,64,128,255")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mt3_infer_bench_aoti"))
    a = p.parse_args()

    import torch

    import fixtures_mt3 as fm
    from mt3_infer.export import mt3 as M

    torch.set_num_threads(a.threads)
    os.makedirs(a.workdir, exist_ok=True)
    ckpt = os.path.join(a.workdir, "mt3.pth")
    if not os.path.exists(ckpt):
        fm.write_checkpoint(a.workdir, fm.FULL, seed=0, config_json=False)
    ts_path = os.path.join(a.workdir, "mt3.mt3i.pt")
    M.export_mt3(ckpt, ts_path)
    ts = torch.jit.load(ts_path, map_location="cpu")
    ts.prepack(16)  # as the engine does on the CPU
    rt = M.MT3Runtime.from_reference(M.load_mt3(ckpt)).eval()
    cfg = M.load_mt3(ckpt).cfg
    L, H, Dh, T = cfg.n_dec_layers, cfg.n_heads, cfg.d_kv, 256
    cap = 256

    class Enc(torch.nn.Module):
        def __init__(self, rt):
            super().__init__()
            self.rt = rt

        def forward(self, x):
            return self.rt.encode(x)

    class Step(torch.nn.Module):
        def __init__(self, rt):
            super().__init__()
            self.rt = rt

        def forward(self, tokens, pos, sk, sv, ck, cv):
            p = pos.item()  # one graph for every position: the facts the shapes need
            torch._check_is_size(p)
            torch._check(p < sk.size(3))
            torch._check(p < self.rt.max_len)
            return self.rt.step(tokens, p, sk, sv, ck, cv)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.chunk, T, cfg.input_dim, generator=g)
    n = a.rows
    batch = torch.export.Dim("batch", min=1, max=4096)
    rows = torch.export.Dim("rows", min=2, max=4096)
    results = {}
    t0 = time.perf_counter()
    with torch.inference_mode():
        ep_enc = torch.export.export(Enc(rt), (x,), dynamic_shapes=({0: batch},))
    pkg_enc = torch._inductor.aoti_compile_and_package(ep_enc, package_path=os.path.join(a.workdir, "enc.pt2"))
    t_enc_c = time.perf_counter() - t0
    aot_enc = torch._inductor.aoti_load_package(pkg_enc)
    with torch.inference_mode():
        k1, v1 = ts.encode(x)
        k2, v2 = aot_enc(x)
        diff = max((k1 - k2).abs().max().item(), (v1 - v2).abs().max().item())
        ms_ts = median_ms(lambda: ts.encode(x))
        ms_aot = median_ms(lambda: aot_enc(x))
    results["encode"] = (ms_ts, ms_aot)
    print(f"encoder, {a.chunk} segments: compile {t_enc_c:.0f} s; TorchScript {ms_ts:.1f} ms, AOTInductor "
          f"{ms_aot:.1f} ms -> ratio {ms_ts / ms_aot:.2f}; max |cross K/V difference| {diff:.2e}")

    ck = k1[:, :1].expand(-1, n, -1, -1, -1).contiguous()
    cv = v1[:, :1].expand(-1, n, -1, -1, -1).contiguous()
    tok = torch.randint(2, 100, (n,), generator=g)
    sk = torch.zeros(L, n, H, cap, Dh)
    sv = torch.zeros_like(sk)
    t0 = time.perf_counter()
    try:
        with torch.inference_mode():
            ep_step = torch.export.export(
                Step(rt), (tok, torch.tensor(5), sk, sv, ck, cv),
                dynamic_shapes=({0: rows}, None, {1: rows}, {1: rows}, {1: rows}, {1: rows}))
        pkg_step = torch._inductor.aoti_compile_and_package(
            ep_step, package_path=os.path.join(a.workdir, "step.pt2"))
        aot_step = torch._inductor.aoti_load_package(pkg_step)
    except Exception as e:  # the capture is the part most likely to change between torch releases
        print(f"decoder step: torch.export/AOTInductor failed ({type(e).__name__}: {str(e)[:300]})")
        aot_step = None
    t_step_c = time.perf_counter() - t0
    if aot_step is not None:
        print(f"decoder step: compile {t_step_c:.0f} s")
        tot_ts = tot_aot = 0.0
        for pos in [int(v) for v in a.positions.split(",")]:
            with torch.inference_mode():
                sk1, sv1 = sk.clone(), sv.clone()
                sk2, sv2 = sk.clone(), sv.clone()
                same = bool((ts.step(tok, pos, sk1, sv1, ck, cv) == aot_step(tok, torch.tensor(pos), sk2, sv2, ck, cv)).all())
                ms_ts = median_ms(lambda: ts.step(tok, pos, sk1, sv1, ck, cv))
                ms_aot = median_ms(lambda: aot_step(tok, torch.tensor(pos), sk2, sv2, ck, cv))
            tot_ts += ms_ts
            tot_aot += ms_aot
            print(f"   step at {n} rows, position {pos}: TorchScript {ms_ts:.2f} ms, AOTInductor {ms_aot:.2f} ms "
                  f"-> ratio {ms_ts / ms_aot:.2f}; same next ids: {same}")
        results["step"] = (tot_ts, tot_aot)
        e_ts, e_aot = results["encode"]
        steps = 22528 / n
        est_ts = 88 / a.chunk * e_ts / 1000 + steps * tot_ts / len(a.positions.split(",")) / 1000
        est_aot = 88 / a.chunk * e_aot / 1000 + steps * tot_aot / len(a.positions.split(",")) / 1000
        print(f"estimate, 180 s clip at 256 tokens ({n} rows): TorchScript {est_ts:.1f} s, AOTInductor "
              f"{est_aot:.1f} s -> ratio {est_ts / est_aot:.2f}")


if __name__ == "__main__":
    main()

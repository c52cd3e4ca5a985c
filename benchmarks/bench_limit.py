"""Throughput against this machine's limit: GEMM rate, memory bandwidth, each
model's achieved rate, where the time goes, and the reduced-precision options.

    .venv/bin/python benchmarks/bench_limit.py [--models mt3,yourmt3]
        [--dtypes float32,bfloat16,int8] [--mt3-seconds 180] [--mt3-tokens 256]
        [--yourmt3-seconds 60] [--yourmt3-tokens 32] [--threads N]
        [--no-breakdown] [--agreement-clips 2] [--device cpu|cuda] [--workdir DIR] [--json OUT]

All in one run, on this machine, --threads threads:

1. **The machine.**  torch's fp32 GEMM rate at 2048^3 (the reference rate of
   every ratio below) and at the decoder's shapes (88x512 . 512x1024, a
   3-minute song's decoder batch; 15x512 . 512x1536), best of 5; bf16 at
   2048^3 where the CPU has bf16 arithmetic; the read bandwidth of memory
   (a 512 MB sum, best of 3).
2. **Each model, each --dtypes entry**, in a fresh child process (no torch
   imported there): a full-size random-weight checkpoint in the upstream
   format, exported once; MT3 (MR-MT3 adapter) on --mt3-seconds of audio at
   --mt3-tokens tokens per segment, YourMT3 on --yourmt3-seconds at
   --yourmt3-tokens per channel (random weights rarely emit EOS: every row
   runs to the cap).  Default settings otherwise (memory plan, continuous
   batching).  The work done is counted with the FLOP formulas of
   specs/performance-anchors.md §5.2-5.4 (MT3; attention included) and
   specs/yourmt3.md §9 (YourMT3: 83 + 37 + 9 GFLOP per segment before the
   decoder, 44.6 MFLOP per row-step), so the achieved rate is
   work / wall time and the ratio is achieved / fp32 GEMM rate.
3. **The fp32 floor** (MT3): the GEMM work at the 2048^3 rate plus the bytes a
   cached decoder step must read at the measured bandwidth (decoder weights
   once per step; each row's cross K/V, 8*2*256*384*4 B, and self K/V,
   8*2*384*(t+1)*4 B, once per row-step).  Compute and memory do not overlap
   on 2 busy cores, so the floor is their sum; the highest ratio any fp32
   implementation could print here is work / peak / floor.
4. **Breakdown** (fp32, --no-breakdown skips it): the exported network is
   replayed in this process under torch's profiler at the run's batch size:
   one encoder call of the run's chunk (encoder vs cross K/V by timing
   ``encoder_hidden`` against ``encode``) and decoder steps at positions
   spread over the cap, ops grouped as decoder GEMMs (linear/matmul of 2-D
   operands), attention over the caches (bmm, softmax, fused attention) and
   the remainder (elementwise, copies, dispatch).  Per-segment and per-row-
   step costs are scaled to the run's counts and printed beside the measured
   network time.
5. **Agreement** of each reduced precision with fp32 on the bundled model
   (``mt3_small``) over held-out renders (tools/synth/evalset.py,
   --agreement-clips clips per set, one soundfont): the share of segments
   whose greedy tokens are identical (the exported network's own cached
   greedy loop, ``export.mt3.greedy_cached``, fp32 vs the dtype), and the
   onset F1 of the package's transcription (mir_eval, 50 ms) at each dtype.
   Needs FluidSynth and a soundfont (``make synth-deps``); skipped otherwise.

With --device cuda (benchmarks/gpu_check.sh) the GEMM rates are measured on
the GPU (fp32 with TF32 off, 8192^3; bf16), the runs use the GPU, and the
floor, the breakdown and the agreement (CPU measurements) are left out;
--dtypes then takes float32, float16, bfloat16.

Prints one line per figure and a JSON line at the end.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from bench_transcribe import synth_audio, work_flops  # noqa: E402  (spec FLOP formulas)

D, H, DK, L, T_MT3 = 512, 6, 64, 8, 256
A = H * DK
DEC_WEIGHT_PARAMS = 22_806_528  # performance-anchors §5.5: decoder weights used per token
Y_ENC_GFLOP = 83.0 + 37.0 + 9.0  # yourmt3.md §9: pre-encoder, Perceiver-TF, bridge + cross K/V
Y_ROW_STEP_FLOP = 44.6e6


# ---------------------------------------------------------------------------
# the machine
# ---------------------------------------------------------------------------

def gemm_rate(m, k, n, dtype="float32", reps=5, device="cpu"):
    import torch

    dt = getattr(torch, dtype)
    a = torch.randn(m, k, device=device).to(dt)
    b = torch.randn(k, n, device=device).to(dt)
    work = 2e9 if device == "cpu" else 2e13  # ~1 s of products per timing
    inner = max(1, int(work // (2 * m * k * n)))
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    for _ in range(2):
        a @ b
    sync()
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(inner):
            a @ b
        sync()
        best = max(best, inner * 2 * m * k * n / (time.perf_counter() - t) / 1e9)
    return best


def read_bandwidth(mb=512, reps=3):
    import torch

    x = torch.ones(mb * (1 << 20) // 4)
    x.sum()
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        x.sum()
        best = max(best, x.numel() * 4 / (time.perf_counter() - t) / 1e9)
    return best


def cpu_has_bf16():
    try:
        with open("/proc/cpuinfo") as fh:
            return " avx512_bf16" in fh.read()
    except OSError:
        return False


# ---------------------------------------------------------------------------
# child: one adapter at one dtype, fresh process, no torch
# ---------------------------------------------------------------------------

def child(a):
    from mt3_infer.adapters import MRMT3Adapter, YourMT3Adapter

    cls = MRMT3Adapter if a.child == "mt3" else YourMT3Adapter
    audio = np.load(a.audio)
    ad = cls(num_threads=a.threads, dtype=a.dtype)
    t = time.perf_counter()
    ad.load_model(a.export, device=a.device)
    load = time.perf_counter() - t
    ad.transcribe_bytes(audio[:16000], 16000, max_new_tokens=2)  # one-time libtorch set-up
    t = time.perf_counter()
    data, st = ad.transcribe_stats(audio, 16000, max_new_tokens=a.tokens)
    st["seconds"] = time.perf_counter() - t
    st["load_seconds"] = load
    st["midi_bytes"] = len(data)
    st["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    st["torch_imported"] = "torch" in sys.modules
    print("RESULT " + json.dumps(st))


def run_child(model, dtype, export, audio_path, tokens, threads, device="cpu"):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", model, "--dtype", dtype, "--export", export,
           "--audio", audio_path, "--tokens", str(tokens), "--threads", str(threads), "--device", device]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{model} {dtype} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


# ---------------------------------------------------------------------------
# work and floor
# ---------------------------------------------------------------------------

def mt3_work_gflop(st):
    return work_flops(st["segments"], st["row_steps"] / st["segments"], T_MT3) / 1e9


def yourmt3_work_gflop(st):
    return (st["segments"] * Y_ENC_GFLOP * 1e9 + st["row_steps"] * Y_ROW_STEP_FLOP) / 1e9


def mt3_floor_seconds(st, tokens, peak_gflops, bw_gbs):
    """GEMM work at the peak + the bytes of the cached steps at the bandwidth."""
    segs = st["segments"]
    tps = st["row_steps"] / segs
    cross = L * 2 * T_MT3 * A * 4
    self_bytes = sum(L * 2 * A * (t + 1) * 4 for t in range(int(round(tps))))
    cache = segs * (tps * cross + self_bytes)
    weights = st["steps"] * DEC_WEIGHT_PARAMS * 4
    compute = mt3_work_gflop(st) / peak_gflops
    memory = (cache + weights) / (bw_gbs * 1e9)
    return compute, memory, cache + weights


# ---------------------------------------------------------------------------
# breakdown: the exported network replayed under the profiler
# ---------------------------------------------------------------------------

GEMM_OPS = {"aten::mm", "aten::addmm", "mkldnn::_linear_pointwise", "quantized::linear_dynamic",
            "aten::linear"}
ATTN_OPS = {"aten::bmm", "aten::_softmax", "aten::softmax", "aten::_scaled_dot_product_flash_attention_for_cpu",
            "aten::_scaled_dot_product_attention_math", "aten::scaled_dot_product_attention"}


def _self_times(prof):
    """{op: self CPU seconds} of the profiled region."""
    out = {}
    for ev in prof.key_averages():
        out[ev.key] = out.get(ev.key, 0.0) + ev.self_cpu_time_total / 1e6
    return out


def breakdown(export, st, features, tokens, threads, reps=3):
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    m = torch.jit.load(export, map_location="cpu")
    if hasattr(m, "prepack"):
        m.prepack(16)
    chunk = max(1, int(st.get("encode_chunk", 8)))
    x = torch.from_numpy(np.ascontiguousarray(features[:chunk]))
    with torch.inference_mode():
        for _ in range(2):
            m.encode(x)
        def best(f):  # fastest of reps calls, per segment
            out = []
            for _ in range(reps):
                t = time.perf_counter()
                f()
                out.append(time.perf_counter() - t)
            return min(out) / x.size(0)

        t_hidden = best(lambda: m.encoder_hidden(x))
        t_encode = max(t_hidden, best(lambda: m.encode(x)))
        ck, cv = m.encode(x)
        per = ck.size(1) // x.size(0)  # decoder rows per segment (YourMT3: channels)
        rows = min(max(1, int(st["batch"])) * per, 512)
        idx = torch.arange(rows) % ck.size(1)
        ck, cv = ck[:, idx].contiguous(), cv[:, idx].contiguous()
        sk = torch.zeros(ck.size(0), rows, ck.size(2), tokens, ck.size(4))
        sv = torch.zeros_like(sk)
        tok = torch.randint(2, 100, (rows,))
        positions = sorted(set(int(p) for p in np.linspace(0, tokens - 1, 8)))
        # (the cache's contents do not change the cost of a step: zeros will do)
        for p in positions[:2]:
            m.step(tok, p, sk, sv, ck, cv)
        t = time.perf_counter()  # the wall time without the profiler's own cost ...
        for p in positions:
            m.step(tok, p, sk, sv, ck, cv)
        wall = time.perf_counter() - t
        with profile(activities=[ProfilerActivity.CPU]) as prof:  # ... split by its op shares
            for p in positions:
                m.step(tok, p, sk, sv, ck, cv)
    times = _self_times(prof)
    total = sum(times.values())
    gemm = sum(v for k, v in times.items() if k in GEMM_OPS)
    attn = sum(v for k, v in times.items() if k in ATTN_OPS)
    per_row_step = wall / (len(positions) * rows)
    scale = per_row_step / total  # share of the profiled self time -> wall per row-step
    return {
        "encoder_s_per_segment": t_hidden,
        "cross_kv_s_per_segment": t_encode - t_hidden,
        "decoder_gemm_s_per_row_step": gemm * scale,
        "attention_s_per_row_step": attn * scale,
        "remainder_s_per_row_step": (total - gemm - attn) * scale,
        "replay_rows": rows,
    }


def print_breakdown(name, st, bd):
    segs, rs = st["segments"], st["row_steps"]
    parts = [
        ("encoder", bd["encoder_s_per_segment"] * segs),
        ("cross K/V", bd["cross_kv_s_per_segment"] * segs),
        ("decoder GEMMs", bd["decoder_gemm_s_per_row_step"] * rs),
        ("attention over the caches", bd["attention_s_per_row_step"] * rs),
        ("remainder (elementwise, copies, dispatch)", bd["remainder_s_per_row_step"] * rs),
    ]
    est = sum(v for _, v in parts)
    print(f"   breakdown (profiled replay at {bd['replay_rows']} rows, scaled to {segs} segments and "
          f"{rs} row-steps; sum {est:.2f} s vs measured network {st['t_network']:.2f} s):")
    for label, v in parts:
        print(f"      {label:<44s}{v:8.2f} s  {100 * v / est:5.1f} %")


# ---------------------------------------------------------------------------
# agreement of the reduced precisions on the bundled model
# ---------------------------------------------------------------------------

def agreement(dtypes, clips, threads):
    import torch

    from mt3_infer import compute_features
    from mt3_infer.adapters import MT3SmallAdapter
    from mt3_infer.export.mt3 import greedy_cached
    from mt3_infer.registry import BUNDLED_DIR

    try:
        from synth import evalset, render
    except ImportError as e:  # pragma: no cover - tools/ missing
        print(f"agreement: skipped ({e})")
        return {}
    missing = render.missing()
    if missing:
        print("agreement: skipped (cannot render: missing " + ", ".join(missing) + "; make synth-deps)")
        return {}
    torch.set_num_threads(threads)
    path = str(BUNDLED_DIR / "mt3_small.mt3i.pt")
    sf = "fluidr3"
    renderer = render.Renderer([sf])
    items = []
    for s, k, notes, info in evalset.iter_clips(clips, evalset.SETS):
        rng = np.random.default_rng(np.random.SeedSequence([11, evalset.eval_seed(s, k), 0]))
        items.append((s, notes, renderer.render(notes, info["duration"], sf, rng)))
    cap = 1024

    def module(dt):
        m = torch.jit.load(path, map_location="cpu")
        if dt == "bfloat16":
            m.to(torch.bfloat16)
        elif dt == "int8":
            m.prepack_int8()
        else:
            m.prepack(16)
        return m

    def tokens(m, dt, feats):
        x = torch.from_numpy(feats)
        if dt == "bfloat16":
            x = x.to(torch.bfloat16)
        out = greedy_cached(m, x, cap)
        return [tuple(int(v) for v in row if v != 0) for row in out]

    feats = [compute_features(audio, 16000, preset="mt3_reference") for _, _, audio in items]
    ref_mod = module("float32")
    ref_tok = [tokens(ref_mod, "float32", f) for f in feats]
    res = {}
    f1 = {}
    for dt in ["float32"] + [d for d in dtypes if d != "float32"]:
        ad = MT3SmallAdapter(num_threads=threads, dtype=dt)
        ad.load_model()
        f1[dt] = float(np.mean([evalset.scores(notes, ad.transcribe_notes(audio, 16000))["onset_f1"]
                                for _, notes, audio in items]))
        ad.unload()
    n_seg = sum(len(t) for t in ref_tok)
    for dt in dtypes:
        if dt == "float32":
            continue
        m = module(dt)
        same = sum(a == b for f, rt in zip(feats, ref_tok) for a, b in zip(rt, tokens(m, dt, f)))
        res[dt] = {"segments": n_seg, "identical": same, "onset_f1": f1[dt], "onset_f1_fp32": f1["float32"]}
        ok = same / n_seg >= 0.99 and abs(f1[dt] - f1["float32"]) <= 0.01
        print(f"agreement {dt:>9s} vs float32 (mt3_small, {len(items)} held-out clips, {n_seg} segments): "
              f"tokens identical on {same}/{n_seg} = {100 * same / n_seg:.1f} % of segments; onset F1 "
              f"{f1[dt]:.3f} vs {f1['float32']:.3f} (diff {f1[dt] - f1['float32']:+.3f}) -> "
              f"{'meets' if ok else 'misses'} the bar (>= 99 % identical, F1 within 0.01)")
    return res


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="mt3,yourmt3")
    p.add_argument("--dtypes", default="float32,bfloat16,int8")
    p.add_argument("--mt3-seconds", type=float, default=180.0)
    p.add_argument("--mt3-tokens", type=int, default=256)
    p.add_argument("--yourmt3-seconds", type=float, default=60.0)
    p.add_argument("--yourmt3-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--no-breakdown", action="store_true")
    p.add_argument("--agreement-clips", type=int, default=2, help="held-out clips per set (0: skip)")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mt3_infer_bench_limit"))
    p.add_argument("--json", default=None)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--export", help=argparse.SUPPRESS)
    p.add_argument("--audio", help=argparse.SUPPRESS)
    p.add_argument("--tokens", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a)

    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "10000"  # the engine's default (csrc/core/engine_loader.c)
    import torch

    import fixtures_mt3 as fm
    import fixtures_yourmt3 as fy
    from mt3_infer import compute_features
    from mt3_infer.export import mt3 as M
    from mt3_infer.export import yourmt3 as Y

    torch.set_num_threads(a.threads)
    os.makedirs(a.workdir, exist_ok=True)
    models = [m for m in a.models.split(",") if m]
    dtypes = [d for d in a.dtypes.split(",") if d]
    gpu = a.device != "cpu"
    if gpu and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device here")
    bf16 = gpu or cpu_has_bf16()
    if "bfloat16" in dtypes and not bf16:
        print("bfloat16: this CPU has no AVX512-BF16; left out (the engine refuses it here)")
        dtypes.remove("bfloat16")
    print(f"load average at start: {os.getloadavg()}; threads {a.threads}; torch {torch.__version__}")

    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = False
        big = 8192
        machine = {"gemm_big": gemm_rate(big, big, big, device=a.device),
                   "gemm_big_bf16": gemm_rate(big, big, big, "bfloat16", device=a.device),
                   "gpu": torch.cuda.get_device_name(0)}
        print(f"{machine['gpu']}: fp32 GEMM {big}^3 (TF32 off): {machine['gemm_big']:.0f} GFLOP/s (the "
              f"reference rate); bf16: {machine['gemm_big_bf16']:.0f} GFLOP/s")
    else:
        big = 2048
        machine = {
            "gemm_big": gemm_rate(2048, 2048, 2048),
            "gemm_88x512x1024": gemm_rate(88, 512, 1024),
            "gemm_15x512x1536": gemm_rate(15, 512, 1536),
            "read_gbs": read_bandwidth(),
        }
        if bf16:
            machine["gemm_big_bf16"] = gemm_rate(2048, 2048, 2048, "bfloat16")
        print(f"fp32 GEMM 2048^3: {machine['gemm_big']:.1f} GFLOP/s (the reference rate); (88x512).(512x1024): "
              f"{machine['gemm_88x512x1024']:.1f}; (15x512).(512x1536): {machine['gemm_15x512x1536']:.1f}")
        if bf16:
            print(f"bf16 GEMM 2048^3: {machine['gemm_big_bf16']:.1f} GFLOP/s")
        print(f"memory read bandwidth (512 MB sum): {machine['read_gbs']:.1f} GB/s")
    peak = machine["gemm_big"]

    results = {"machine": machine, "runs": {}, "breakdown": {}}
    for name in models:
        if name == "mt3":
            ckpt = os.path.join(a.workdir, "mt3.pth")
            if not os.path.exists(ckpt):
                fm.write_checkpoint(a.workdir, fm.FULL, seed=0, config_json=False)
            export = os.path.join(a.workdir, "mt3.mt3i.pt")
            M.export_mt3(ckpt, export)
            seconds, tokens, preset = a.mt3_seconds, a.mt3_tokens, "mr_mt3"
            audio = synth_audio(seconds)
        elif name == "yourmt3":
            ckpt = os.path.join(a.workdir, "yourmt3_full.ckpt")
            if not os.path.exists(ckpt):
                fy.save_lightning_checkpoint(ckpt, fy.random_state_dict(fy.FULL, True, seed=1),
                                             fy.make_hparams(fy.FULL, True))
            export = os.path.join(a.workdir, "yourmt3_full.mt3i.pt")
            Y.export_checkpoint(ckpt, export)
            seconds, tokens, preset = a.yourmt3_seconds, a.yourmt3_tokens, "yourmt3"
            audio = synth_audio(seconds)
        else:
            sys.exit(f"unknown model {name!r}: mt3 or yourmt3")
        audio_path = os.path.join(a.workdir, f"{name}_audio.npy")
        np.save(audio_path, audio)
        print(f"\n== {name}: {seconds:g} s of audio, cap {tokens} tokens per row")
        for dt in dtypes:
            st = run_child(name, dt, export, audio_path, tokens, a.threads, a.device)
            work = mt3_work_gflop(st) if name == "mt3" else yourmt3_work_gflop(st)
            rate = work / st["seconds"]
            st["work_gflop"], st["achieved_gflops"], st["ratio"] = work, rate, rate / peak
            results["runs"][f"{name}/{dt}"] = st
            print(f"   {name} {dt:>9s}: {st['seconds']:7.2f} s wall ({seconds / st['seconds']:.1f}x real time), "
                  f"{st['segments']} segments, {st['row_steps'] / st['segments']:.1f} row-steps/segment, "
                  f"batch {st['batch']}, peak RSS {st['peak_rss_mb']:.0f} MB; {work:.0f} GFLOP -> "
                  f"{rate:.1f} GFLOP/s = ratio {rate / peak:.2f} of the fp32 GEMM rate; "
                  f"{1000 * st['seconds'] / seconds:.1f} ms per second of audio")
            if name == "mt3" and dt == "float32" and not gpu:
                comp, mem, nbytes = mt3_floor_seconds(st, tokens, peak, machine["read_gbs"])
                floor = comp + mem
                st["floor_s"] = floor
                print(f"   fp32 floor here: {comp:.2f} s of GEMM work at the peak + {nbytes / 1e9:.0f} GB of "
                      f"weights and caches at {machine['read_gbs']:.1f} GB/s = {mem:.2f} s -> {floor:.2f} s; "
                      f"the highest fp32 ratio on this machine is {comp / floor:.2f} "
                      f"(achieved {floor / st['seconds']:.2f} of the floor's speed)")
            if dt != "float32" and f"{name}/float32" in results["runs"]:
                base = results["runs"][f"{name}/float32"]["seconds"]
                print(f"   {name} {dt:>9s}: {base / st['seconds']:.2f}x the float32 speed")
        if not a.no_breakdown and "float32" in dtypes and not gpu:
            st = results["runs"][f"{name}/float32"]
            feats = compute_features(audio, 16000, preset=preset)
            bd = breakdown(export, st, feats, tokens, a.threads)
            results["breakdown"][name] = bd
            print_breakdown(name, st, bd)

    if a.agreement_clips > 0 and any(d != "float32" for d in dtypes) and not gpu:
        print()
        results["agreement"] = agreement(dtypes, a.agreement_clips, a.threads)
    print(f"\nload average at end: {os.getloadavg()}")
    print("JSON " + json.dumps(results))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()

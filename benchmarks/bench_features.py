"""Feature extraction speed: the C presets vs an equivalent torch.stft + matmul.

60 s of 16 kHz audio, each preset, 1 and 2 threads (our num_threads and
torch.set_num_threads).  Both sides start from the same float32 NumPy array and
end with the float32 batch (segments, frames, bins); the torch side includes its
own segmentation, padding, filterbank matmul, log and padding-row zeroing.
Prints the best of REPEATS runs in ms and the ratio torch / C (> 1: C faster),
plus the max difference between the two outputs as a sanity check.

Run: .venv/bin/python benchmarks/bench_features.py   (or `make bench`)
"""
import math
import time

import numpy as np

import mt3_infer
from mt3_infer import _core

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

SECONDS = 60
REPEATS = 5


def hz_fb(f_max):
    """torchaudio-style HTK mel bank (1025, 512), Hz-domain triangles."""
    m = np.linspace(2595 * math.log10(1 + 20 / 700), 2595 * math.log10(1 + f_max / 700), 514,
                    dtype=np.float32)
    f = 700.0 * (10.0 ** (m.astype(np.float64) / 2595.0) - 1.0)
    freqs = np.linspace(0, 8000, 1025)
    up = (freqs[:, None] - f[:-2]) / (f[1:-1] - f[:-2])
    down = (f[2:] - freqs[:, None]) / (f[2:] - f[1:-1])
    return np.maximum(0, np.minimum(up, down)).astype(np.float32)


def tf_fb():
    mel = lambda hz: 1127.0 * np.log(1.0 + np.asarray(hz) / 700.0)  # noqa: E731
    e = np.linspace(mel(20.0), mel(7600.0), 514)
    b = mel(np.linspace(0, 8000, 1025)[1:])
    w = np.maximum(0, np.minimum((b[:, None] - e[:-2]) / (e[1:-1] - e[:-2]),
                                 (e[2:] - b[:, None]) / (e[2:] - e[1:-1])))
    return np.vstack([np.zeros((1, 512)), w]).astype(np.float32)


class TorchFeatures:
    """The same four presets written with torch.stft + matmul."""

    def __init__(self):
        self.window = torch.hann_window(2048)
        self.fb = {
            "mr_mt3": torch.from_numpy(hz_fb(7600.0)),
            "mt3_pytorch": torch.from_numpy(hz_fb(8000.0)),
            "mt3_reference": torch.from_numpy(tf_fb()),
        }

    def __call__(self, x, preset):
        x = torch.from_numpy(x)
        n = x.shape[0]
        if preset == "yourmt3":
            L = 32767
            s = -(-n // L)
            segs = torch.nn.functional.pad(x, (0, s * L - n)).reshape(s, L)
            spec = torch.stft(segs, 2048, 300, window=self.window, center=True, pad_mode="reflect",
                              return_complex=True).abs()[:, 1:, :]
            out = torch.log(spec + 1e-5).transpose(1, 2)
            lo = out.amin(dim=(1, 2), keepdim=True)
            hi = out.amax(dim=(1, 2), keepdim=True)
            out = (out - lo) / (hi - lo + 0.008)
            return torch.nan_to_num(out, nan=0.0).contiguous().numpy()
        f = n // 128 if preset == "mr_mt3" else n // 128 + 1
        s = -(-f // 256)
        xs = x[: f * 128] if preset == "mr_mt3" else torch.nn.functional.pad(x, (0, f * 128 - n))
        segs = torch.nn.functional.pad(xs, (0, s * 32768 - f * 128)).reshape(s, 32768)
        if preset == "mt3_pytorch":
            mag = torch.stft(segs, 2048, 128, window=self.window, center=True, pad_mode="reflect",
                             return_complex=True).abs() ** 2
        else:
            segs = torch.nn.functional.pad(segs, (0, 1920))
            mag = torch.stft(segs, 2048, 128, window=self.window, center=False,
                             return_complex=True).abs()
        mel = torch.matmul(mag.transpose(1, 2), self.fb[preset])
        if preset == "mt3_pytorch":
            out = torch.log(mel + 1e-6)
        else:
            out = torch.log(torch.where(mel <= 0, torch.full_like(mel, 1e-5), mel))
        valid = f - 256 * (s - 1)
        out[-1, valid:] = 0.0
        if preset == "mt3_pytorch":
            out[:, 256] = 0.0
        return out.numpy()


def best_ms(fn, repeats=REPEATS):
    fn()  # warm-up (tables, allocator)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main():
    rng = np.random.default_rng(0)
    t = np.arange(SECONDS * 16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    print(f"features for {SECONDS} s of 16 kHz audio, best of {REPEATS} (ms); ratio = torch / C")
    if torch is None:
        print("torch not importable: C timings only")
    tf = TorchFeatures() if torch is not None else None
    print(f"{'preset':<14} {'thr':>3} {'C ms':>9} {'torch ms':>9} {'ratio':>6}  {'max|C-torch|':>12}  shape")
    for preset in mt3_infer.features.PRESETS:
        for nt in (1, 2):
            c_ms = best_ms(lambda: _core.compute_features(x, 16000, preset, num_threads=nt))
            ours = _core.compute_features(x, 16000, preset, num_threads=nt)
            if tf is not None:
                torch.set_num_threads(nt)
                t_ms = best_ms(lambda: tf(x, preset))
                diff = np.abs(tf(x, preset) - ours).max()
                print(f"{preset:<14} {nt:>3} {c_ms:9.1f} {t_ms:9.1f} {t_ms / c_ms:6.2f}  {diff:12.2e}  "
                      f"{ours.shape}")
            else:
                print(f"{preset:<14} {nt:>3} {c_ms:9.1f}")


if __name__ == "__main__":
    main()

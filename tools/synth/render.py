"""FluidSynth rendering of note arrays to 16 kHz mono float32.

One :class:`Renderer` per process keeps the soundfonts loaded.  Each clip gets
random reverb and chorus settings and sends, a random soundfont drum kit, and
after synthesis a random EQ (high-pass, low-pass, one peaking band), a little
white or pink noise and a random peak level.  All randomness comes from the
``rng`` passed in, so a clip is a function of its seed.

Notes are played sample-accurately from the note array (onset/offset times
on the 10 ms grid), so the audio and the targets agree exactly; the same notes
are written as MIDI by the package's own writer for the record.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

import numpy as np

SR = 16000
SOUNDFONTS: Dict[str, str] = {
    "fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "musescore": "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
}
DEBIAN_PACKAGES = "fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont-small"
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)  # GM2/GS kit presets of bank 128 (fallback: 0)


def missing() -> List[str]:
    """What this machine lacks to render (empty when all is there)."""
    out = []
    try:
        import fluidsynth  # noqa: F401
    except Exception as exc:  # ImportError, or OSError when libfluidsynth is absent
        out.append(f"pyfluidsynth / libfluidsynth ({exc.__class__.__name__}: {exc})")
    out += [p for p in SOUNDFONTS.values() if not os.path.exists(p)]
    return out


def _biquad_peak(f0: float, gain_db: float, q: float):
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / SR
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return b / den[0], den / den[0]


def post_process(x: np.ndarray, rng) -> np.ndarray:
    """Random EQ, noise and level on mono float64 audio."""
    from scipy import signal

    if rng.random() < 0.5:
        sos = signal.butter(2, float(rng.uniform(30, 250)), "highpass", fs=SR, output="sos")
        x = signal.sosfilt(sos, x)
    if rng.random() < 0.5:
        sos = signal.butter(2, float(rng.uniform(2500, 7500)), "lowpass", fs=SR, output="sos")
        x = signal.sosfilt(sos, x)
    if rng.random() < 0.6:
        b, a = _biquad_peak(float(np.exp(rng.uniform(np.log(150), np.log(6000)))),
                            float(rng.uniform(-8, 8)), float(rng.uniform(0.5, 3)))
        x = signal.lfilter(b, a, x)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        x = x * (float(rng.uniform(0.08, 0.95)) / peak)
    rms = float(np.sqrt(np.mean(x ** 2))) if x.size else 0.0
    if rms > 0 and rng.random() < 0.8:
        snr_db = float(rng.uniform(25, 60))
        noise = rng.standard_normal(x.size)
        if rng.random() < 0.5:  # pink-ish: one-pole low-pass of white noise
            noise = signal.lfilter([1.0], [1.0, -0.95], noise)
        noise *= rms / (np.sqrt(np.mean(noise ** 2)) * 10 ** (snr_db / 20))
        x = x + noise
    return np.clip(x, -1.0, 1.0)


class Renderer:
    """Loaded FluidSynth synths, one per soundfont."""

    def __init__(self, soundfonts: Optional[List[str]] = None):
        import fluidsynth

        self._fs = {}
        for name in soundfonts or list(SOUNDFONTS):
            synth = fluidsynth.Synth(gain=0.4, samplerate=float(SR))
            sfid = synth.sfload(SOUNDFONTS[name])
            if sfid < 0:
                raise RuntimeError(f"FluidSynth could not load {SOUNDFONTS[name]}")
            self._fs[name] = (synth, sfid)

    @property
    def soundfonts(self) -> List[str]:
        return list(self._fs)

    def render(self, notes: np.ndarray, duration: float, soundfont: str, rng,
               tail: float = 0.5, effects: bool = True) -> np.ndarray:
        """Mono float32 audio at 16 kHz, ``duration + tail`` seconds long."""
        synth, sfid = self._fs[soundfont]
        synth.system_reset()
        synth.get_samples(SR)  # flush the previous clip's reverb/chorus tails
        synth.set_reverb(roomsize=float(rng.uniform(0, 0.9)), damping=float(rng.uniform(0, 1)),
                         width=float(rng.uniform(0, 100)), level=float(rng.uniform(0, 0.9)))
        synth.set_chorus(nr=int(rng.integers(1, 6)), level=float(rng.uniform(0, 4)),
                         speed=float(rng.uniform(0.2, 2)), depth=float(rng.uniform(1, 15)), type=0)
        # one channel per program (skipping 9), drums on channel 10 (index 9)
        channels: Dict[int, int] = {}
        free = [c for c in range(16) if c != 9]
        for prog in sorted({int(p) for p, d in zip(notes["program"], notes["is_drum"]) if not d}):
            ch = free.pop(0) if free else 15
            channels[prog] = ch
            synth.program_select(ch, sfid, 0, prog)
        if notes["is_drum"].any():
            kit = int(rng.choice(DRUM_KITS))
            if synth.program_select(9, sfid, 128, kit) != 0:
                synth.program_select(9, sfid, 128, 0)
        for ch in list(channels.values()) + [9]:
            synth.cc(ch, 91, int(rng.integers(0, 100)))  # reverb send
            synth.cc(ch, 93, int(rng.integers(0, 60)))  # chorus send
            synth.cc(ch, 7, int(rng.integers(80, 128)))  # channel volume
        ev = []  # (sample, order, channel, key, velocity); note-offs first at a sample
        for n in notes:
            ch = 9 if n["is_drum"] else channels[int(n["program"])]
            t_on = int(round(n["onset"] * SR))
            ev.append((t_on, 1, ch, int(n["pitch"]), int(n["velocity"])))
            if not n["is_drum"]:
                ev.append((int(round(n["offset"] * SR)), 0, ch, int(n["pitch"]), 0))
        ev.sort()
        total = int(round((duration + tail) * SR))
        out, pos = [], 0
        for (t, kind, ch, key, vel) in ev:
            if t > pos:
                out.append(synth.get_samples(t - pos))
                pos = t
            if kind:
                synth.noteon(ch, key, max(1, vel))
            else:
                synth.noteoff(ch, key)
        if total > pos:
            out.append(synth.get_samples(total - pos))
        for ch in range(16):
            synth.all_sounds_off(ch)
        stereo = np.concatenate(out).astype(np.float64).reshape(-1, 2) / 32768.0
        mono = stereo.mean(axis=1)[:total]
        if effects:
            mono = post_process(mono, rng)
        return mono.astype(np.float32)

    def close(self):
        for synth, _ in self._fs.values():
            synth.delete()
        self._fs = {}

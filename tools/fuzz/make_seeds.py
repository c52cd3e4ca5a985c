"""Write the small seed corpora of the libFuzzer targets (csrc/fuzz/) into
tests/fuzz/corpus/<target>/: a handful of valid inputs per parser, so the
fuzzer starts inside the formats instead of guessing magic numbers.

    .venv/bin/python tools/fuzz/make_seeds.py

Deterministic; the files are committed (a few kB in all).  Inputs that a
fuzz run finds crashing are fixed and added to tests/test_fuzz_regressions.py.
"""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def chunk(cid, body):
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def fmt(tag, ch, rate, bits, ext=None):
    ba = ch * ((bits + 7) // 8)
    body = struct.pack("<HHIIHH", tag, ch, rate, rate * ba, ba, bits)
    if ext is not None:
        body += struct.pack("<H", len(ext)) + ext
    return body


def riff(*chunks, magic=b"RIFF"):
    body = b"WAVE" + b"".join(chunks)
    return magic + struct.pack("<I", len(body)) + body


def wav_seeds():
    pcm16 = struct.pack("<16h", *[(i * 2000 - 16000) for i in range(16)])
    f32 = struct.pack("<8f", *[i / 8 - 0.5 for i in range(8)])
    pcm24 = b"".join(struct.pack("<i", v)[:3] for v in (-8388608, 0, 8388607, 12345, -1, 2, 3, 4))
    guid_pcm = struct.pack("<HI", 16, 3) + bytes.fromhex("0100000000001000800000aa00389b71")
    ds64 = struct.pack("<QQQI", 0, len(pcm16), 8, 0)
    rf64_body = b"WAVE" + chunk(b"ds64", ds64) + chunk(b"fmt ", fmt(1, 2, 8000, 16)) \
        + b"data" + struct.pack("<I", 0xFFFFFFFF) + pcm16
    return {
        "pcm16_stereo.wav": riff(chunk(b"fmt ", fmt(1, 2, 16000, 16)), chunk(b"data", pcm16)),
        "float32_mono.wav": riff(chunk(b"fmt ", fmt(3, 1, 44100, 32)), chunk(b"data", f32)),
        "pcm24_ext.wav": riff(chunk(b"fmt ", fmt(0xFFFE, 2, 22050, 24, guid_pcm)), chunk(b"LIST", b"junk1"),
                              chunk(b"data", pcm24)),
        "pcm8.wav": riff(chunk(b"fmt ", fmt(1, 1, 8000, 8)), chunk(b"data", bytes(range(0, 256, 16)))),
        "rf64.wav": b"RF64" + struct.pack("<I", 0xFFFFFFFF) + rf64_body,
    }


def meta_seeds():
    base = {"format_version": 1, "family": "mt3", "frames": 257, "min_frames": 1, "feature_bins": 512,
            "channels": 1, "n_layers": 8, "n_heads": 6, "d_kv": 64, "memory_len": 256, "max_len": 1024,
            "vocab_size": 1536, "start_id": 0, "eos_id": 1, "pad_id": 0, "max_new_tokens": 1024,
            "check_first_eos": True, "encoder_kib_per_segment": 40000,
            "source_sha256": "ab" * 32, "exporter_version": "mt3-infer-export/4"}
    y = dict(base, family="yourmt3", channels=13, frames=110, min_frames=110, memory_len=110, vocab_size=596,
             max_new_tokens=256, max_len=1024)
    return {"mt3.json": json.dumps(base).encode(), "yourmt3.json": json.dumps(y, indent=1).encode(),
            "nested.json": json.dumps(dict(base, extra={"a": [1, 2, {"b": None}], "s": "\\u00e9\\n"})).encode()}


def token_seeds():
    # byte 0: scheme | 0x80 auto_filter; byte 1: segments-1 (2 bits) | (length-1) << 2; then 16-bit ids
    def ids(*v):
        return b"".join(struct.pack("<H", x) for x in v)
    # MT3 codec: shift 1..1000 -> ids 2.., program/velocity/pitch further up (rough, the fuzzer refines)
    mt3 = ids(1001 + 0, 1133 + 60, 10, 1133 + 60, 30, 1, 0)
    ymt3 = ids(2, 300, 400, 50, 1, 0) * 13
    return {"mt3_pytorch.bin": bytes([0, (7 << 2) | 0]) + mt3,
            "mr_mt3.bin": bytes([0x81, (7 << 2) | 1]) + mt3 * 2,
            "yourmt3.bin": bytes([2, (5 << 2) | 0]) + ymt3}


def midi_seeds():
    def note(on, off, pitch, vel, prog, drum):
        return struct.pack("<ddiiiB", on, off, pitch, vel, prog, drum)
    notes = note(0.0, 0.5, 60, 100, 0, 0) + note(0.25, 1.0, 64, 90, 33, 0) + note(0.1, 0.11, 36, 127, 0, 1)
    bad = note(float("nan"), 1.0, 60, 100, 0, 0) + note(2.0, 1.0, 200, -1, 999, 0)
    return {"pretty.bin": bytes([1]) + notes, "mr_mt3.bin": bytes([0x80]) + notes,
            "yourmt3.bin": bytes([2]) + notes + note(0.0, 0.2, 38, 100, 128, 1), "invalid.bin": bytes([1]) + bad}


def main():
    for target, files in (("wav", wav_seeds()), ("meta", meta_seeds()), ("tokens", token_seeds()),
                          ("midi", midi_seeds())):
        d = os.path.join(OUT, target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as fh:
                fh.write(data)
        print(f"{target}: {len(files)} seeds in {os.path.relpath(d, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()

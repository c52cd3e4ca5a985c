#!/usr/bin/env python3
"""Run the anchor's own decode() on token arrays and write the MIDI it returns.

Usage:
  anchor_decode.py --scheme mt3_pytorch|mr_mt3|yourmt3 --tokens tokens.npy|tokens.npz
                   [--starts starts.npy] [--no-auto-filter] --out out.mid
                   [--notes-json notes.json]

Token input = exactly what each adapter's forward() hands to decode():
  mt3_pytorch : int array (S, L) of post-processed codec ids (raw id - 3; -1 = EOS/after EOS/UNK,
                -3 = generated PAD). forward() right-pads rows with -1.
                decode() cuts each row at its first -1.
  mr_mt3      : int array (S, L), same arithmetic (forward()['tokens']); decode() keeps values >= 0.
  yourmt3     : raw model ids (no offset subtraction). Either an .npy (S, C, L) array, split into
                batches of 8 segments like YourMT3Adapter.forward (bsz=8), or an .npz whose arrays
                (sorted by name, e.g. arr_0, arr_1, ...) are the per-batch (B, C, L) arrays
                returned by YourMT3.inference_file.

--starts (float64, shape (S,)) overrides each segment's start time:
  mt3_pytorch : value put in adapter._last_frame_times[i][0] (decode then subtracts t mod 0.01);
                default = frame time of the chunk's first frame = 256*i/125.0 (as preprocess()).
  mr_mt3      : value put in frame_times[i][0]; default 256*i/125.0.
  yourmt3     : not supported (decode() computes 32767*i/16000 itself).

MIDI written = adapter.decode(...) -> mido.MidiFile -> .save(out). For MT3-PyTorch that object is
the mido read-back of pretty_midi's temp file (plus auto_filter unless --no-auto-filter).

--notes-json writes the notes the anchor decoded before MIDI writing:
  mt3_pytorch : est_ns notes from metrics_utils.event_predictions_to_ns, in list order, plus
                invalid/dropped counters.
  mr_mt3      : NoteSequence notes from vocab_utils.decode_and_combine_predictions, in list order,
                plus invalid/dropped counters.
  yourmt3     : "notes" = mix_notes() output (before program remap), "notes_remapped" = the notes
                handed to note2note_event inside write_model_output_as_midi (after gm_ext_plus remap).
Prints a one-line JSON summary on stdout (anchor chatter goes to stderr).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402

import _anchor_common as C  # noqa: E402


def decode_mt3_pytorch(tokens, starts, auto_filter, record):
    from mt3_infer.models.mt3_pytorch.contrib import metrics_utils
    ad = C.make_mt3_pytorch_adapter_nomodel(auto_filter=auto_filter)
    S = tokens.shape[0]
    frame_times = np.zeros((S, 256))
    if starts is None:
        # preprocess(): times = np.arange(num_frames) / frames_per_second, chunked by 256
        frame_times[:, 0] = (np.arange(S) * 256) / ad._spectrogram_processor.config.frames_per_second
    else:
        frame_times[:, 0] = starts
    ad._last_frame_times = frame_times

    orig = metrics_utils.event_predictions_to_ns

    def wrapped(*a, **k):
        res = orig(*a, **k)
        record["result"] = res
        return res

    metrics_utils.event_predictions_to_ns = wrapped
    try:
        midi = ad.decode(tokens)
    finally:
        metrics_utils.event_predictions_to_ns = orig
    res = record.pop("result")
    ns = res["est_ns"]
    record["notes"] = [C.note_to_dict_ns(n) for n in ns.notes]
    for k in ("est_invalid_events", "est_dropped_events"):
        if k in res:
            record[k] = int(res[k])
    record["start_times"] = [float(x) for x in frame_times[:, 0]]
    return midi


def decode_mr_mt3(tokens, starts):
    from mt3_infer.adapters import vocab_utils
    ad = C.make_mr_mt3_adapter_nomodel()
    S = tokens.shape[0]
    frame_times = np.zeros((S, 256))
    if starts is None:
        frame_times[:, 0] = (np.arange(S) * 256) / ad.spectrogram_config.frames_per_second
    else:
        frame_times[:, 0] = starts
    record = {}
    orig = vocab_utils.decode_and_combine_predictions

    def wrapped(*a, **k):
        res = orig(*a, **k)
        record["result"] = res
        return res

    vocab_utils.decode_and_combine_predictions = wrapped
    try:
        midi = ad.decode({"tokens": tokens, "frame_times": frame_times})
    finally:
        vocab_utils.decode_and_combine_predictions = orig
    ns, inv, drop = record.pop("result")
    record["notes"] = [C.note_to_dict_ns(n) for n in ns.notes]
    record["invalid_events"] = int(inv)
    record["dropped_events"] = int(drop)
    record["start_times"] = [float(x) for x in frame_times[:, 0]]
    return midi, record


def decode_yourmt3(batches):
    import mt3_infer.models.yourmt3.utils.note2event as n2e
    import mt3_infer.models.yourmt3.utils.utils as yutils
    ad = C.make_yourmt3_adapter_nomodel()
    record = {}
    orig_mix = n2e.mix_notes
    orig_n2ne = yutils.note2note_event

    def mix_wrapped(*a, **k):
        res = orig_mix(*a, **k)
        record["notes"] = [C.note_to_dict_ymt3(n) for n in res]
        return res

    def n2ne_wrapped(notes, *a, **k):
        record["notes_remapped"] = [C.note_to_dict_ymt3(n) for n in notes]
        return orig_n2ne(notes, *a, **k)

    n2e.mix_notes = mix_wrapped
    yutils.note2note_event = n2ne_wrapped
    try:
        midi = ad.decode(batches)
    finally:
        n2e.mix_notes = orig_mix
        yutils.note2note_event = orig_n2ne
    total = sum(b.shape[0] for b in batches)
    record["start_times"] = [32767 * i / 16000 for i in range(total)]
    return midi, record


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scheme", required=True, choices=["mt3_pytorch", "mr_mt3", "yourmt3"])
    p.add_argument("--tokens", required=True)
    p.add_argument("--starts")
    p.add_argument("--no-auto-filter", action="store_true")
    p.add_argument("--out", required=True)
    p.add_argument("--notes-json")
    a = p.parse_args()

    starts = None
    if a.starts:
        starts = np.asarray(np.load(a.starts), dtype=np.float64).reshape(-1)

    saved = C.quiet_stdout()
    try:
        if a.scheme == "yourmt3":
            if starts is not None:
                raise SystemExit("--starts is not supported for yourmt3 (decode computes start times)")
            if a.tokens.endswith(".npz"):
                z = np.load(a.tokens)
                batches = [np.asarray(z[k]).astype(np.int64) for k in sorted(z.files, key=_natkey)]
            else:
                t = np.asarray(np.load(a.tokens)).astype(np.int64)
                if t.ndim != 3:
                    raise SystemExit(f"yourmt3 tokens must be (S, C, L), got {t.shape}")
                batches = [t[i:i + C.YMT3_BSZ] for i in range(0, t.shape[0], C.YMT3_BSZ)]
            midi, record = decode_yourmt3(batches)
            S = sum(b.shape[0] for b in batches)
        else:
            t = np.asarray(np.load(a.tokens)).astype(np.int64)
            if t.ndim != 2:
                raise SystemExit(f"{a.scheme} tokens must be (S, L), got {t.shape}")
            if starts is not None and starts.shape[0] != t.shape[0]:
                raise SystemExit("--starts length must equal the number of token rows")
            S = t.shape[0]
            if a.scheme == "mt3_pytorch":
                record = {}
                midi = decode_mt3_pytorch(t, starts, not a.no_auto_filter, record)
            else:
                midi, record = decode_mr_mt3(t, starts)
        midi.save(a.out)
    finally:
        C.restore_stdout(saved)

    if a.notes_json:
        record["scheme"] = a.scheme
        record["auto_filter"] = (a.scheme == "mt3_pytorch" and not a.no_auto_filter)
        C.write_json(a.notes_json, record)
    C.summary({"ok": True, "scheme": a.scheme, "segments": int(S), "out": a.out,
               "n_notes": len(record.get("notes", [])), "midi_bytes": os.path.getsize(a.out)})


def _natkey(name):
    import re
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", name)]


if __name__ == "__main__":
    C.run_main(main)

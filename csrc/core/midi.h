/* Standard MIDI File writers, byte-exact with what mt3-infer 0.2.0 returns
 * (its files are written by mido 1.3; running status, one end_of_track per
 * track).
 *
 *   MT3_MIDI_MR_MT3   MRMT3Adapter's hand-made writer (specs/mt3-family.md §7.1):
 *                     one track, 220 ticks/quarter, set_tempo 500000, pitched notes on
 *                     channel 0 and drums on 9, no program changes, real note_off,
 *                     delta ticks int((dt*220)*2) truncated per event (drift).
 *   MT3_MIDI_PRETTY   pretty_midi's PrettyMIDI.write as used by MT3PyTorchAdapter (§7.2):
 *                     timing track + one track per (program, is_drum) in order of first
 *                     appearance, GM channels skipping 9, note-off = note_on velocity 0,
 *                     ticks round-half-even(t / (60/(120*220))); optional auto_filter (§7.4).
 *   MT3_MIDI_YOURMT3  YourMT3's note_event2midi (specs/yourmt3.md §7.5-7.6): 480 ticks, no
 *                     tempo, empty first track, one named track per program (gm_ext_plus
 *                     remap applied), velocity 100, drums 10 ms on channel 9.
 *   MT3_MIDI_MAGENTA  Magenta's Colab: note_seq.sequence_proto_to_midi_file -> pretty_midi
 *                     (specs/magenta-t5x.md §5.8): PRETTY's bytes conventions (220 tpq,
 *                     120 BPM, same timing track, ticks, event order), but an empty
 *                     unnamed Instrument(program=0) first, instruments numbered as
 *                     assign_instruments does (new pitched programs in note order ->
 *                     0..8, 10, 11, ...; drums -> 9), tracks in sorted (instrument,
 *                     program, is_drum) order, instrument 0 in the first track and the
 *                     others named ('Drums' or the GM program name); no auto_filter.
 *
 * Note order matters where the anchor's does: MR_MT3 stable-sorts by onset (ties keep
 * input order), PRETTY groups instruments by first appearance, MAGENTA numbers them by
 * first appearance.  Notes as returned by mt3_decode_tokens (scheme order) reproduce
 * the anchor's bytes. */
#ifndef MT3_MIDI_H
#define MT3_MIDI_H

#include <stddef.h>
#include <stdint.h>

#include "core/mt3_error.h"
#include "core/notes.h"

typedef enum mt3_midi_style {
    MT3_MIDI_MR_MT3 = 0,
    MT3_MIDI_PRETTY = 1,
    MT3_MIDI_YOURMT3 = 2,
    MT3_MIDI_MAGENTA = 3
} mt3_midi_style;

/* ---- writer flags ---------------------------------------------------------- */
/* PRETTY only (ignored by the other styles): the anchor's auto_filter drum-leakage
 * post-process (mt3-family §7.4).  The anchor has it on by default; pass it. */
#define MT3_MIDI_AUTO_FILTER (1u << 0)
/* [F] MR_MT3: ticks from absolute times, round-half-even(t*440), so truncation
 * losses do not accumulate (mt3-family §10 item 6). */
#define MT3_MIDI_ABS_TICKS (1u << 1)
/* [F] MR_MT3: keep instrument identity: one channel per program (ascending program
 * order over channels 0..8, 10..15; programs beyond the 15th share channel 15) with a
 * program_change at the start of the track (mt3-family §10 item 6). */
#define MT3_MIDI_PROGRAM_CHANNELS (1u << 2)
/* Shorthand for every corrected ([F]) flag of the style (MR_MT3: ABS_TICKS |
 * PROGRAM_CHANNELS; none for the others). */
#define MT3_MIDI_CORRECTED (1u << 8)
#define MT3_MIDI_ALL_FLAGS                                                                     \
    (MT3_MIDI_AUTO_FILTER | MT3_MIDI_ABS_TICKS | MT3_MIDI_PROGRAM_CHANNELS | MT3_MIDI_CORRECTED)

/* What auto_filter did (for tests and logs). */
typedef enum mt3_auto_filter_action {
    MT3_AF_UNCHANGED = 0,
    MT3_AF_DRUMS_ONLY = 1,
    MT3_AF_REMAP_TO_DRUMS = 2
} mt3_auto_filter_action;

/* Write notes[0..n) as a Standard MIDI File.  Notes are validated first
 * (mt3_notes_validate: MT3_E_VALUE naming the bad note).  On success *bytes is a
 * malloc'd buffer of *len bytes that the caller frees with free(); on error *bytes
 * is NULL and *len 0.  A drum note's program 128 (YourMT3's drum marker) is written
 * as program 0 by the PRETTY and MAGENTA writers. */
int mt3_midi_write(mt3_midi_style st, const mt3_note *notes, size_t n, unsigned flags,
                   uint8_t **bytes, size_t *len, mt3_error *err);

/* Same, also reporting the auto_filter decision (NULL allowed). */
int mt3_midi_write_ex(mt3_midi_style st, const mt3_note *notes, size_t n, unsigned flags,
                      uint8_t **bytes, size_t *len, mt3_auto_filter_action *af, mt3_error *err);

#endif

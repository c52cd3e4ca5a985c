/* Raw decoder ids -> notes, one scheme per anchor adapter or Magenta model.
 *
 *   MT3_SCHEME_MT3_PYTORCH  Magenta's decoding as run by mt3-infer 0.2.0's
 *                           MT3PyTorchAdapter (specs/mt3-family.md §4.2, §6.1-6.3).
 *   MT3_SCHEME_MAGENTA      Magenta's own decoding of the `mt3` checkpoint
 *                           (specs/magenta-t5x.md §5.6, §5.7): as MT3-PyTorch but
 *                           with Magenta's token post-processing -- PAD, UNK,
 *                           extra and padding ids are invalid events (skipped),
 *                           so a generated UNK does not end the segment.
 *   MT3_SCHEME_MAGENTA_PIANO Magenta's `ismir2021` piano model (magenta-t5x §6):
 *                           the 1664-id vocabulary (127 velocity bins, velocity =
 *                           bin), NoteEncodingSpec (no tie section: notes stay
 *                           active across segments, a tie token is invalid),
 *                           512-frame segments, same token rule as MAGENTA.
 *   MT3_SCHEME_MR_MT3       the anchor's own rewrite for MRMT3Adapter (§4.2, §6.4),
 *                           quirks included: sustained drums keyed (d, 9), per-note
 *                           flush end, no drop rule, UNK skipped.
 *   MT3_SCHEME_YOURMT3      YourMT3's 13-channel decoding (specs/yourmt3.md §7.1-7.5):
 *                           per-channel tie rules, segment merging, channel mixing,
 *                           overlap trimming and the gm_ext_plus program remap.
 *
 * Default behaviour reproduces the anchor; corrected behaviour (the specs' [F]
 * items) only with explicit flags.  Every function here is reentrant and uses
 * no global mutable state. */
#ifndef MT3_NOTES_H
#define MT3_NOTES_H

#include <stddef.h>
#include <stdint.h>

#include "core/mt3_error.h"

/* One note.  Times in seconds.  Drum notes: MT3 schemes use program 0
 * (MR-MT3's flushed drums keep program 9, as in the anchor), YourMT3 uses
 * program 128.  Velocities: 127 (or the initial 100) for the 1-bin MT3
 * schemes, the decoded bin 1..127 (or 100) for Magenta piano, 100 for YourMT3
 * (the value its MIDI writer uses). */
typedef struct mt3_note {
    double onset, offset;
    int32_t pitch, velocity, program;
    uint8_t is_drum;
} mt3_note;

/* Growable note list.  Zero-initialise ({0}) before first use; free with
 * mt3_notes_free.  The list owns `items`. */
typedef struct mt3_notes {
    mt3_note *items;
    size_t n, cap;
} mt3_notes;

typedef enum mt3_scheme {
    MT3_SCHEME_MT3_PYTORCH = 0,
    MT3_SCHEME_MR_MT3 = 1,
    MT3_SCHEME_YOURMT3 = 2,
    MT3_SCHEME_MAGENTA = 3,
    MT3_SCHEME_MAGENTA_PIANO = 4
} mt3_scheme;

/* Schemes are 0 .. MT3_SCHEME_COUNT-1. */
#define MT3_SCHEME_COUNT 5

/* ---- decode flags (bit set; 0 = the anchor's behaviour) ------------------ */
/* [F] MR-MT3: apply Magenta's max_time drop rule (mt3-family §10 item 4): events
 * after a shift landing strictly later than the next segment's start (in start
 * order, empty segments included) are dropped with the rest of the segment. */
#define MT3_DECODE_MRMT3_DROP_RULE (1u << 0)
/* [F] MR-MT3: Magenta's drum handling (§10 item 5): a drum is a 10 ms note that
 * never becomes active, drum with velocity 0 is rejected, and program-9 notes are
 * ordinary pitched notes (no collision with drum keys at tie or flush). */
#define MT3_DECODE_MRMT3_MAGENTA_DRUMS (1u << 1)
/* [F] YourMT3: trim overlaps once more after the gm_ext_plus remap, so merged
 * programs never overlap in the output (yourmt3 §10 item 13). */
#define MT3_DECODE_YMT3_TRIM_AFTER_REMAP (1u << 2)
/* YourMT3: return the programs the model emitted (skip the gm_ext_plus remap
 * of §7.5).  Not a fix, a view; the YourMT3 MIDI writer remaps anyway. */
#define MT3_DECODE_YMT3_NO_REMAP (1u << 3)
/* Shorthand: every corrected ([F]) flag that applies to the scheme. */
#define MT3_DECODE_CORRECTED (1u << 8)
#define MT3_DECODE_ALL_FLAGS                                                                   \
    (MT3_DECODE_MRMT3_DROP_RULE | MT3_DECODE_MRMT3_MAGENTA_DRUMS |                            \
     MT3_DECODE_YMT3_TRIM_AFTER_REMAP | MT3_DECODE_YMT3_NO_REMAP | MT3_DECODE_CORRECTED)

/* The [F] flags MT3_DECODE_CORRECTED stands for, for scheme s (0 for
 * MT3-PyTorch and the two Magenta schemes, which are Magenta's algorithm
 * verbatim).  The MR-MT3 flags have no effect on the Magenta-rule schemes. */
unsigned mt3_decode_corrected_flags(mt3_scheme s);

/* Number of decoder channels of a scheme: 1 (MT3 schemes) or 13 (YourMT3);
 * 0 for an unknown scheme. */
size_t mt3_scheme_channels(mt3_scheme s);

/* The vocabulary (mt3_vocab) of a scheme's tokens: MT3_VOCAB_MT3 for
 * MT3-PyTorch, MR-MT3 and Magenta, MT3_VOCAB_MAGENTA_PIANO for Magenta piano,
 * MT3_VOCAB_YOURMT3 for YourMT3; -1 for an unknown scheme. */
int mt3_scheme_vocab(mt3_scheme s);

/* Largest time (seconds) accepted anywhere in this API (segment starts, note
 * times); keeps every tick count far inside int64. */
#define MT3_MAX_TIME_S 1.0e9

/* Start time (s) of segment i under the scheme's own convention:
 *   MT3-PyTorch, Magenta: t - fmod(t, 0.01) with t = (256 i)/125.0 (floored to 10 ms)
 *   Magenta piano: t - fmod(t, 0.01) with t = (512 i)/125.0
 *   MR-MT3:      (256 i)/125.0 exactly
 *   YourMT3:     (32767 i)/16000.0 (ticks are rounded half-to-even later) */
double mt3_segment_start(mt3_scheme s, size_t i);

/* Decode model output into notes.
 *
 * tokens: raw ids emitted after the start token, int64, row-major
 *   [n_segments][n_channels][length] (n_channels 1 for the MT3 schemes, 13 for
 *   YourMT3), PAD (0) after EOS.  Any int64 value is accepted for the MT3
 *   schemes (ids outside the codec are invalid events, skipped as in the
 *   anchor); YourMT3 ids outside 0..595 are an MT3_E_VALUE error (the anchor's
 *   codec raises on them).
 * segment_starts: NULL = scheme default (mt3_segment_start), else n_segments
 *   finite values in [0, MT3_MAX_TIME_S], used verbatim.
 * flags: MT3_DECODE_* bits.
 * out: notes are appended (out must be initialised; it is not cleared) in the
 *   scheme's own order -- Magenta/MR-MT3 append order, YourMT3's final mixed
 *   order -- which is what the matching MIDI writer expects.
 * Returns MT3_OK, MT3_E_VALUE (bad shape/flags/starts/ids) or MT3_E_NOMEM; on
 * error `out` keeps its previous length. */
int mt3_decode_tokens(mt3_scheme s, const int64_t *tokens, size_t n_segments, size_t n_channels,
                      size_t length, const double *segment_starts, unsigned flags, mt3_notes *out,
                      mt3_error *err);

/* Free the list's storage and zero it.  Safe on NULL and on zeroed lists. */
void mt3_notes_free(mt3_notes *n);

/* Append one note; MT3_E_NOMEM on allocation failure. */
int mt3_notes_push(mt3_notes *n, const mt3_note *note, mt3_error *err);

/* Ensure room for `extra` more notes. */
int mt3_notes_reserve(mt3_notes *n, size_t extra, mt3_error *err);

/* Stable sort to the design order: (onset, pitch, program); ties keep their
 * relative order.  MT3_E_NOMEM if the temporary buffer cannot be allocated. */
int mt3_notes_sort(mt3_notes *n, mt3_error *err);

/* Check notes for the MIDI writers: finite onset/offset in [0, MT3_MAX_TIME_S],
 * offset >= onset, pitch and velocity 0..127, program 0..127 (128 allowed on
 * drum notes), is_drum 0/1.  MT3_E_VALUE naming the first bad note. */
int mt3_notes_validate(const mt3_note *notes, size_t n, mt3_error *err);

/* Generic stable merge sort (ties keep input order) of n elements of `size`
 * bytes; cmp(a, b, ctx) < 0 when a sorts first.  MT3_E_NOMEM on failure. */
int mt3_stable_sort(void *base, size_t n, size_t size,
                    int (*cmp)(const void *, const void *, void *), void *ctx, mt3_error *err);

/* YourMT3 output vocabulary gm_ext_plus (yourmt3 §6.3): group head of a
 * program (0..127; programs outside every group map to themselves) and the
 * group's track name ("Acoustic Piano", ...; NULL when the program is in no
 * group -- the writer then names the track "Prg. N"). */
int32_t mt3_ymt3_program_head(int32_t program);
const char *mt3_ymt3_program_name(int32_t program);

#endif

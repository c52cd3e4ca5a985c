/* pipeline — the per-model recipes of the MT3 adapters and the one call that
 * runs a recipe end to end: audio -> 16 kHz mono -> features -> network
 * (greedy, cached) -> tokens -> notes -> MIDI bytes.
 *
 *   recipe        resampling (sr != 16 kHz)          preset       frames  notes        MIDI
 *   mr_mt3        refused (the anchor raises); with   mr_mt3       256     MR-MT3 rules single track
 *                 allow_resample: torchaudio-style                                       (MT3_MIDI_MR_MT3)
 *                 sinc, as the anchor's load_audio
 *   mt3_pytorch   libsoxr HQ (librosa soxr_hq)        mt3_pytorch  257     Magenta      pretty_midi style,
 *                                                                                        auto_filter default on
 *   yourmt3       torchaudio-style sinc (as the        yourmt3      110     YourMT3      YourMT3 note_event2midi
 *                 anchor's preprocess)                 (32767-sample         13-channel  (MT3_MIDI_YOURMT3)
 *                                                      segments)             merge
 *   magenta_mt3   libsoxr HQ (librosa soxr_hq, as      mt3_reference 256     Magenta      note_seq/pretty_midi
 *                 the Colab's librosa.load)                                  (§5.6 ids)   (MT3_MIDI_MAGENTA)
 *   magenta_piano libsoxr HQ                           mt3_reference 512     Magenta      note_seq/pretty_midi
 *                                                      _512                  piano, with  (MT3_MIDI_MAGENTA)
 *                                                                            velocities
 *
 * The anchors' recipes decode greedily by default; the two Magenta recipes
 * decode with beam search of one beam and length penalty 0.6
 * (MT3_DECODE_BEAM1, specs/magenta-t5x.md §5.5), as the Colab does, and need
 * a "magenta" export (of a T5X checkpoint: Magenta's positional table).
 * Either rule is an option of the call (mt3_run_opts.decode_rule) for
 * networks exported with step_top2.
 *
 * The two MT3 recipes use the same exported network (family "mt3"); MR-MT3
 * feeds 256 frames per segment, MT3-PyTorch 257.  yourmt3 needs a "yourmt3"
 * export (of last.ckpt) and decodes 13 channels per segment, 8 segments per
 * batch by default (the anchor's bsz).  Segments are decoded in batches
 * (the anchor: MR-MT3 all at once, MT3-PyTorch one at a time) — rows are
 * independent, so batching changes nothing but speed.
 *
 * MR-MT3 audio shorter than 128 samples has no frame: the anchor crashes,
 * here the result is a MIDI file without notes (a crash is not behaviour
 * worth keeping, specs/mt3-family.md §10 item 3).
 *
 * Thread safety: reentrant; the model is shared read-only, every call owns
 * its own engine session and buffers.
 */
#ifndef MT3_PIPELINE_H
#define MT3_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/audio.h"
#include "core/codec.h"
#include "core/decode.h"
#include "core/engine_loader.h"
#include "core/features.h"
#include "core/midi.h"
#include "core/mt3_error.h"
#include "core/notes.h"

typedef enum mt3_recipe_id {
    MT3_RECIPE_MR_MT3 = 0,
    MT3_RECIPE_MT3_PYTORCH = 1,
    MT3_RECIPE_YOURMT3 = 2,
    MT3_RECIPE_MAGENTA_MT3 = 3,  /* Magenta's original `mt3` checkpoint, run the Colab's way */
    MT3_RECIPE_MAGENTA_PIANO = 4 /* Magenta's `ismir2021` piano model (127 velocity bins) */
} mt3_recipe_id;

#define MT3_RECIPE_COUNT 5

typedef struct mt3_recipe {
    const char *name;         /* "mr_mt3", "mt3_pytorch", "yourmt3", "magenta_mt3", "magenta_piano" */
    const char *family;       /* artifact family the network must have: "mt3", "yourmt3", "magenta" */
    const char *source;       /* the original checkpoint exported for it (error messages) */
    int32_t vocab_size;       /* output ids the network must have */
    int default_batch;        /* segments per batch when the caller says 0; 0: all */
    mt3_preset preset;        /* spectrogram preset; audio at other rates is resampled the
                                 preset's way (mt3_preset_info.resampler) */
    int refuse_resample;      /* sr != 16000 is an error unless allow_resample (MR-MT3, as 0.2.0) */
    mt3_scheme scheme;        /* token -> note rules */
    mt3_midi_style midi;      /* MIDI writer */
    unsigned default_midi_flags; /* the anchor's defaults (MT3_MIDI_AUTO_FILTER for mt3_pytorch) */
    int decode_rule;          /* MT3_DECODE_GREEDY (the anchors) or MT3_DECODE_BEAM1 (Magenta's Colab) */
} mt3_recipe;

/* The recipe table is the one place that decides, per adapter, the network
 * family, preset (and with it the resampler), token scheme, MIDI writer and
 * defaults; everything else asks it. */

/* The recipe table entry, or NULL for an unknown id. */
const mt3_recipe *mt3_recipe_get(mt3_recipe_id id);

/* The recipe whose token scheme is `s` (each scheme belongs to one), or NULL. */
const mt3_recipe *mt3_recipe_for_scheme(mt3_scheme s);

/* Decode tokens (as mt3_decode_tokens, with the recipe's scheme) and write
 * them with the recipe's MIDI writer, notes passed in the scheme's order, so
 * the bytes equal the anchor's.  midi_flags: e.g. MT3_MIDI_AUTO_FILTER for
 * MT3-PyTorch's default.  notes_out (may be NULL) receives the notes,
 * unsorted, appended. */
int mt3_recipe_tokens_to_midi(const mt3_recipe *r, const int64_t *tokens, size_t n_segments,
                              size_t n_channels, size_t length, const double *segment_starts,
                              unsigned decode_flags, unsigned midi_flags, mt3_notes *notes_out,
                              uint8_t **bytes, size_t *len, mt3_error *err);

/* Check that a loaded network fits a recipe (family, feature bins, frame
 * range, vocabulary, channels); MT3_E_CHECKPOINT naming the mismatch. */
int mt3_recipe_check_model(const mt3_recipe *r, const mt3_model *m, mt3_error *err);

typedef struct mt3_run_opts {
    int batch_size;      /* segments per network batch; <= 0: the recipe's
                            default_batch (all for the MT3 recipes, 8 for yourmt3) */
    int max_new_tokens;  /* <= 0: the model's (1024 MT3, 256 YourMT3) */
    int num_threads;     /* features and network threads; <= 0: defaults */
    int allow_resample;  /* recipes that refuse sr != 16 kHz resample instead */
    unsigned decode_flags; /* MT3_DECODE_* */
    unsigned midi_flags;   /* MT3_MIDI_* (used verbatim) */
    int want_midi;       /* produce MIDI bytes */
    int want_notes;      /* keep the notes (scheme order) */
    int preset_override; /* < 0 (default): the recipe's spectrogram preset; else an mt3_preset with
                            the same bins and a frame count the network accepts (e.g.
                            MT3_PRESET_MT3_REFERENCE, the features the MT3 checkpoint was trained on) */
    int max_memory_mb;   /* working-memory budget of the call in MiB (<= 0: MT3_DEFAULT_MEMORY_MB):
                            features are computed and decoded in windows of segments sized so that
                            the 16 kHz audio, the token buffer, one window of features and the
                            decoder caches of one batch fit (mt3_pipeline_plan).  An explicit
                            batch_size is honoured even when it exceeds the budget. */
    int drain_only;      /* decode batches drain-only (no continuous refill; see decode.h) */
    int want_tokens;     /* keep the generated ids in the result (streaming decodes them itself) */
    int max_segments;    /* > 0: transcribe only each input's first max_segments segments */
    const volatile int *cancel; /* optional, see mt3_decode_opts */
    int (*progress)(void *user, int segments_done, int segments_total, int64_t tokens_done);
    void *progress_user;        /* optional progress callback, see mt3_decode_opts */
    int decode_rule;     /* < 0 (default): the recipe's rule; else MT3_DECODE_GREEDY or MT3_DECODE_BEAM1 */
} mt3_run_opts;

/* Defaults: everything 0 except want_midi = 1, preset_override = -1,
 * decode_rule = -1 and midi_flags = the recipe's default_midi_flags. */
mt3_run_opts mt3_run_opts_default(const mt3_recipe *r);

#define MT3_DEFAULT_MEMORY_MB 2048

/* How a call is cut: features `window` segments at a time, decoded with at
 * most `batch` segments' rows active (continuous batching refills from the
 * window; batch <= window, window a multiple of batch unless it is all
 * segments), encoded at most `encode_chunk` segments per encoder call.
 * row_bytes: the decoder cache of one row at the largest size it can reach
 * (self-attention grown to cover max_new tokens, twice for the copy while
 * rows are compacted, plus cross K/V); segment_bytes: one segment's rows
 * plus its staged copy; encoder_bytes: the encoder's working memory per
 * segment (measured at export, else estimated).  Of the budget left after
 * the audio and token buffers (fixed_bytes), encoder calls take up to 1/8,
 * the window's features beyond the batch up to 1/4, the batch the rest. */
typedef struct mt3_plan {
    int window, batch, encode_chunk;
    size_t row_bytes, segment_bytes, encoder_bytes, fixed_bytes, budget_bytes;
} mt3_plan;

/* The plan for n_segments segments of n_samples 16 kHz samples, with
 * attention caches of cache_elem_bytes per value (mt3_model.cache_elem_bytes;
 * <= 0: 4). */
mt3_plan mt3_pipeline_plan(const mt3_recipe *r, const mt3_model_meta *meta, int cache_elem_bytes,
                           const mt3_preset_info *pi, int n_segments, size_t n_samples, const mt3_run_opts *o);

typedef struct mt3_run_result {
    uint8_t *midi;     /* malloc'ed SMF bytes (want_midi), else NULL */
    size_t midi_len;
    mt3_notes notes;   /* want_notes: notes in the scheme's order */
    int64_t *tokens;   /* want_tokens: malloc'ed ids [n_segments][channels][token_length] */
    int n_segments;    /* segments transcribed */
    int channels;      /* decoder rows per segment (1 MT3, 13 YourMT3) */
    int token_length;  /* columns of the token array */
    int64_t steps;     /* decoder steps (all batches) */
    int64_t row_steps; /* tokens computed (sum over rows of their generated length) */
    int64_t slot_steps; /* decoder batch slots x steps (padding fraction = 1 - row_steps / slot_steps) */
    int window, batch; /* segments per feature window and per decoder batch (the plan) */
    int encode_chunk;  /* most segments per encoder call (the plan) */
    size_t samples_16k;
    double t_audio, t_features, t_network, t_notes; /* seconds per stage (monotonic clock) */
} mt3_run_result;

void mt3_run_result_free(mt3_run_result *r);

/* Run the recipe on one audio view (validated here: finite samples, sr
 * range).  On success fills *out (caller frees with mt3_run_result_free);
 * on failure *out is zeroed and err says why (MT3_E_AUDIO, MT3_E_VALUE,
 * MT3_E_CHECKPOINT, MT3_E_INFERENCE, MT3_E_NOMEM, MT3_E_CANCELLED). */
int mt3_pipeline_run(const mt3_recipe *r, const mt3_model *m, const mt3_audio_view *audio, int sr,
                     const mt3_run_opts *opts, mt3_run_result *out, mt3_error *err);

/* Several inputs through one decoder (cross-file batching): every input's
 * audio is prepared, then the segments of all inputs go through the same
 * windows and continuous batches, and each input gets its own result, equal
 * to what mt3_pipeline_run gives it alone.  A problem with one input (its
 * audio or sample rate, its notes) is reported in errs[i] with out[i]
 * zeroed, and the others complete.  Returns MT3_OK when the call ran (check
 * errs[i] per input), or an error that stopped it for every input (bad
 * options, MT3_E_INFERENCE, MT3_E_NOMEM, MT3_E_CANCELLED) with every out[i]
 * zeroed.  Stats of the shared work (steps, row_steps, slot_steps,
 * t_features, t_network, window, batch) are the whole call's in each
 * result. */
int mt3_pipeline_run_many(const mt3_recipe *r, const mt3_model *m, int n_inputs, const mt3_audio_view *audio,
                          const int *sr, const mt3_run_opts *opts, mt3_run_result *out, mt3_error *errs,
                          mt3_error *err);

#endif

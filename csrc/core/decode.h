/* decode — the generation loop over the engine table (any family).
 *
 * Two rules: greedy (every family's anchor) and beam-1 (Magenta's Colab:
 * t5x beam search with one beam, brevity penalty alpha 0.6; see
 * MT3_DECODE_BEAM1 below).  Greedy rules (specs/mt3-family.md §4.1,
 * specs/yourmt3.md §5):
 *   - every decoder row starts from start_id (0) at position 0;
 *   - the next id is the argmax of the logits (the engine's step);
 *   - a row finishes when it emits eos_id (1) — except at its first token
 *     when meta check_first_eos is false (YourMT3);
 *   - after its EOS a row's output is pad_id (0) and it leaves the batch
 *     (keep_rows), so finished rows cost nothing;
 *   - at most max_new_tokens tokens per row (meta default: 1024 MT3, 256
 *     YourMT3); the loop ends early when every row has finished;
 *   - at most batch_size segments are decoded at once (default: all).  With
 *     an engine and model that offer append_rows/step_groups (exporter 2)
 *     the batch is continuous: when rows end, their slots take the next
 *     pending segments (appended as a new group at position 0) once at
 *     least a quarter of the batch (and at least one segment) is free, or
 *     when the rest of the input fits; the engine encodes them up to 8 at a
 *     time ahead of need (stage_rows/append_staged), since small encoder
 *     calls are slow per segment; otherwise (drain_only, or
 *     an older export) each batch runs until its last row ends.  Rows are
 *     independent and every group's self-attention covers exactly its own
 *     positions, so neither choice changes a token.
 *
 * Output: ids[segment][channel][length] of the generated tokens (the start
 * token is not included), pad_id after EOS and past each chunk's last step;
 * length = the most steps any chunk ran.
 */
#ifndef MT3_DECODE_H
#define MT3_DECODE_H

#include <stdint.h>

#include "core/engine_loader.h"
#include "core/mt3_error.h"

/* Beam search with one beam (specs/magenta-t5x.md §5.5), per row, with
 * T = max_new_tokens, BP(n) = ((5 + n) / 6)^0.6 and L the live log-prob
 * (float32 throughout):
 *   - each step the engine gives the two best ids of log_softmax + L
 *     (step_top2; ties -> lower id);
 *   - an EOS among them with value v at step t becomes the finished
 *     candidate when v / BP(t + 1) > its score (start: -1e7); the output is
 *     then the live tokens before t followed by EOS;
 *   - the live path takes the best non-EOS id (the second when the first is
 *     EOS) and its value becomes L;
 *   - the row ends after T steps, or as soon as its finished score exceeds
 *     L / BP(T + 1) (no later step can beat it);
 *   - with no finished candidate, the output is the T live tokens.
 * It costs greedy's steps plus the run past greedy's EOS until the bound
 * holds.  Rows stay independent, so batching and refills change nothing. */
#define MT3_DECODE_GREEDY 0
#define MT3_DECODE_BEAM1 1
#define MT3_BEAM1_ALPHA 0.6f
#define MT3_BEAM1_NEG (-1.0e7f)

typedef struct mt3_decode_opts {
    int batch_size;     /* segments per engine batch; <= 0: all segments */
    int max_new_tokens; /* <= 0: meta max_new_tokens; at most meta max_len */
    int num_threads;    /* intra-op threads for this call; <= 0: the model's */
    const volatile int *cancel; /* optional: a nonzero value stops with MT3_E_CANCELLED */
    /* Optional progress callback, called on the decoding thread once before
     * the first batch (0 done), after each batch (continuous batching: when
     * segments have completed) and, at most every ~0.2 s (monotonic clock),
     * during a batch.
     * segments_done: segments whose rows have all finished; tokens_done:
     * decoder row-steps so far.  A nonzero return stops the run with
     * MT3_E_CANCELLED. */
    int (*progress)(void *user, int segments_done, int segments_total, int64_t tokens_done);
    void *progress_user;
    int drain_only;     /* nonzero: batches drain (no refill), the baseline of continuous batching */
    int encode_chunk;   /* most segments per encoder call (its activations grow with them);
                           <= 0: MT3_ENCODE_CHUNK.  Changes no value, only the transient. */
    int rule;           /* MT3_DECODE_GREEDY (default) or MT3_DECODE_BEAM1 (needs
                           MT3_ENGINE_CAP_STEP_TOP2: an MT3 export of exporter 5) */
} mt3_decode_opts;

/* Default and largest segments per encoder call: past 8, a call gets no
 * cheaper per segment on the CPU (measured: 46 ms per segment at 2, 27 ms
 * at 8, mt3_small, 2 threads), while its activations keep growing. */
#define MT3_ENCODE_CHUNK 8

typedef struct mt3_tokens {
    int64_t *ids;  /* [n_segments * channels * length], malloc'ed, owned */
    int n_segments;
    int channels;
    int length;
    int64_t row_steps; /* decoder row-steps computed (tokens produced) */
    int64_t slot_steps; /* batch slots x steps: row_steps plus the slots left idle by rows that
                           ended while their batch ran on (1 - row/slot = padding fraction) */
    int64_t steps;     /* decoder steps (engine calls) over all chunks */
} mt3_tokens;

/* Release t->ids and zero the record (safe on NULL / zeroed records). */
void mt3_tokens_free(mt3_tokens *t);

/* Decode (opts->rule: greedy by default) n_segments feature blocks (host float32, contiguous
 * [n_segments][frames][meta.feature_bins]).  `frames` must lie in
 * meta [min_frames, frames].  On success fills *out (caller frees with
 * mt3_tokens_free).  n_segments == 0 gives an empty result. */
int mt3_decode_greedy(const mt3_model *m, const float *features, int n_segments, int frames,
                      const mt3_decode_opts *opts, mt3_tokens *out, mt3_error *err);

#endif

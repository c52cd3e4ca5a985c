/* engine.h — the only seam between the C core and a network runtime.
 *
 * The libtorch implementation lives in engine_torch.cpp, compiled into
 * mt3_infer/libmt3_torch*.so and opened with dlopen() the first time a model
 * is loaded (csrc/core/engine_loader.c).  The library exports one symbol:
 *
 *     const mt3_engine_api *mt3_engine_get_api(void);
 *
 * returning a static, immutable table.  A future runtime (AOTInductor, a pure
 * C engine) is another implementation of the same table.  No torch type ever
 * crosses this header; only C scalars, pointers and host buffers.
 *
 * Error handling: every function returns MT3_OK (0) or an mt3_status code and
 * fills the caller-owned mt3_error.  Implementations catch every exception at
 * the ABI boundary.
 *
 * Threading: an mt3_engine_model is immutable after load and may be shared by
 * any number of threads; an mt3_engine_session belongs to one thread at a time
 * (one per transcribe call).
 *
 * ---------------------------------------------------------------------------
 * The TorchScript artifact contract (format_version 1)
 * ---------------------------------------------------------------------------
 * One scripted module per network, saved with torch.jit.save and carrying the
 * extra file "mt3_infer.json":
 *   {"format_version": 1, "family": "mt3" | "yourmt3",
 *    "frames": T, "feature_bins": F,          encoder input (B, T, F) float32
 *    "channels": C,                           decoder rows per segment (1 or 13)
 *    "n_layers": L, "n_heads": H, "d_kv": Dh, decoder cache geometry
 *    "memory_len": S,                         cross-attention keys per row
 *    "max_len": Lmax,                         self-attention cache length
 *    "vocab_size": V, "start_id": 0, "eos_id": 1, "pad_id": 0,
 *    "max_new_tokens": 1024 | 256,            decoding cap the anchor uses
 *    "check_first_eos": true | false,         YourMT3 never checks token 1
 *    "source_sha256": "...", "exporter_version": "...", plus free extras;
 *    optional "min_frames": the encoder also accepts any T' in
 *    [min_frames, frames], and then cross K/V hold T' keys (S = T');
 *    optional "encoder_kib_per_segment" (exporter 3): peak working memory of
 *    encode per segment, measured at export, for the memory plan}
 * Methods (all tensors on the module's device, fp32 unless cast on load):
 *   encode(features[B,T,F]) -> (cross_k, cross_v), each [L, B*C, H, S, Dh];
 *        row r = b*C + c (segment-major).
 *   step(tokens[N] int64, pos: int, self_k, self_v [L, N, H, Lmax, Dh],
 *        cross_k, cross_v [L, N, H, S, Dh]) -> next ids [N] int64
 *        Embeds `tokens` at position `pos`, writes this position's keys and
 *        values into self_k/self_v[:, :, :, pos] in place, attends to cache
 *        positions 0..pos, returns argmax of the logits (ties -> lowest id).
 *   step_logits(...)  same arguments, returns logits [N, V] (tests/debug).
 *   step_groups(tokens[N], sizes: List[int], positions: List[int], self_k, self_v,
 *        cross_k, cross_v) -> next ids [N] (optional, exporter 2): rows in
 *        contiguous groups, group g at position positions[g]; each group's
 *        self-attention covers exactly its positions 0..positions[g].
 *   step_top2(tokens[N], sizes, positions, live_logp[N] float32, self_k, ...)
 *        -> (ids [N, 2] int64, values [N, 2] float32) (optional, exporter 5):
 *        grouped as step_groups; the two best ids of
 *        log_softmax(logits) + live_logp (descending, ties -> lower id).
 *   encoder_hidden(features[B,T,F]) -> final encoder states (tests/debug).
 */
#ifndef MT3_ENGINE_H
#define MT3_ENGINE_H

#include <stdint.h>

#include "core/mt3_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MT3_ENGINE_ABI_VERSION 3

typedef struct mt3_engine_model mt3_engine_model;
typedef struct mt3_engine_session mt3_engine_session;

typedef enum mt3_engine_dtype {
    MT3_DTYPE_FLOAT32 = 0,
    MT3_DTYPE_FLOAT16 = 1, /* CUDA only */
    MT3_DTYPE_BFLOAT16 = 2, /* CUDA; CPUs with AVX512-BF16 */
    MT3_DTYPE_INT8 = 3      /* CPU: fp32 with int8 dynamic quantization of the decoder linears */
} mt3_engine_dtype;

typedef struct mt3_engine_load_opts {
    const char *device; /* "cpu", "cuda", "cuda:N", or "auto" */
    int dtype;          /* mt3_engine_dtype */
    int num_threads;    /* intra-op threads; <= 0 leaves libtorch's default */
    int no_prepack;     /* CPU fp32: skip the module's prepack() (oneDNN-packed weights); the
                           caller's policy (MT3_NO_PREPACK=1, read in Python) */
} mt3_engine_load_opts;

/* What the engine checks tensors against, from the artifact's mt3_infer.json
 * as parsed by the C loader (mt3_meta_parse: the one reader of the metadata
 * in C; the engine hands the text out unparsed). */
typedef struct mt3_engine_dims {
    int frames, min_frames; /* encoder input frames accepted: min_frames..frames */
    int feature_bins;
    int channels;           /* decoder rows per segment */
    int n_layers, n_heads, d_kv, max_len;
    int vocab_size;
} mt3_engine_dims;

/* ABI 2: every entry is present (the core and the engine are built from one
 * tree; the loader refuses a table with a NULL entry). */
typedef struct mt3_engine_api {
    int abi_version; /* MT3_ENGINE_ABI_VERSION */

    /* Load a TorchScript artifact and its mt3_infer.json text (not parsed
     * here).  Refuses files without mt3_infer.json or without the methods
     * encode/step (MT3_E_CHECKPOINT).  The model is not usable until bound. */
    int (*model_load)(const char *path, const mt3_engine_load_opts *opts,
                      mt3_engine_model **out, mt3_error *err);
    /* Bind the parsed dimensions, once, after model_load and before the model
     * is shared (MT3_E_VALUE when out of range or already bound).  Sessions
     * of an unbound model are refused. */
    int (*model_bind)(mt3_engine_model *m, const mt3_engine_dims *dims, mt3_error *err);
    void (*model_free)(mt3_engine_model *m);
    /* The artifact's mt3_infer.json text (NUL-terminated, owned by the model). */
    const char *(*model_meta_json)(const mt3_engine_model *m);
    /* The resolved device string ("cpu", "cuda:0"), owned by the model. */
    const char *(*model_device)(const mt3_engine_model *m);
    /* MT3_ENGINE_CAP_* flags of a loaded model. */
    int (*model_caps)(const mt3_engine_model *m);

    /* Per-call state: caches sized for at most max_rows decoder rows. */
    int (*session_new)(const mt3_engine_model *m, int max_rows,
                       mt3_engine_session **out, mt3_error *err);
    void (*session_free)(mt3_engine_session *s);
    /* Intra-op threads for this session's calls (<= 0: the model's
     * setting).  Applied on the calling thread at every call. */
    int (*session_set_threads)(mt3_engine_session *s, int num_threads);

    /* Encode n_segments feature blocks (host float32, [n_segments, T', F],
     * min_frames <= T' <= frames: one MT3 export serves MR-MT3's 256 frames
     * and MT3-PyTorch's 257), compute cross K/V, reset the self-attention
     * cache.  Active rows become n_segments * C in segment-major order. */
    int (*encode)(mt3_engine_session *s, const float *features, int n_segments, int frames,
                  mt3_error *err);

    /* Encode n_segments more feature blocks (same frame count as the
     * session's encode) and append their rows after the active ones (the
     * active set grows by n_segments * C, at most to max_rows).  The new
     * rows' self-attention cache is written from position 0 by their steps. */
    int (*append_rows)(mt3_engine_session *s, const float *features, int n_segments, int frames,
                       mt3_error *err);

    /* Encode n_segments more feature blocks (same frame count as the
     * session's encode, at most max_rows rows) into a pool kept beside the
     * active rows; the pool must be empty (every staged segment appended;
     * encode empties it).  Lets a caller encode several segments in one call
     * and hand them to slots a few at a time as rows end. */
    int (*stage_rows)(mt3_engine_session *s, const float *features, int n_segments, int frames,
                      mt3_error *err);

    /* Append the rows of the oldest n_segments staged segments after the
     * active ones, exactly as append_rows would have for those features. */
    int (*append_staged)(mt3_engine_session *s, int n_segments, mt3_error *err);

    /* One greedy step over the active rows: tokens_in[n_active] at position
     * pos; writes next ids to next_out[n_active]. */
    int (*step)(mt3_engine_session *s, const int64_t *tokens_in, int pos,
                int64_t *next_out, mt3_error *err);

    /* One greedy step over the active rows in n_groups contiguous groups:
     * group g is the next sizes[g] rows, all at position positions[g] (groups
     * may be at different positions; each attends to its own 0..position).
     * Needs MT3_ENGINE_CAP_STEP_GROUPS (else MT3_E_FRAMEWORK). */
    int (*step_groups)(mt3_engine_session *s, const int64_t *tokens_in, int n_groups,
                       const int32_t *sizes, const int32_t *positions, int64_t *next_out,
                       mt3_error *err);

    /* One beam-1 step (t5x beam search with one beam, specs/magenta-t5x.md
     * §5.5) over the active rows, grouped as step_groups: live_logp[i] is
     * row i's running log-probability L.  For each row, the two largest
     * values of log_softmax(logits) + L (float32; ties -> the lower id) go
     * to ids_out[2i], ids_out[2i+1] (descending) and their values to
     * logp_out[2i], logp_out[2i+1].  Needs MT3_ENGINE_CAP_STEP_TOP2 (else
     * MT3_E_FRAMEWORK). */
    int (*step_top2)(mt3_engine_session *s, const int64_t *tokens_in, int n_groups, const int32_t *sizes,
                     const int32_t *positions, const float *live_logp, int64_t *ids_out, float *logp_out,
                     mt3_error *err);

    /* Keep only the listed active rows (ascending indices into the current
     * active set); their caches move with them. */
    int (*keep_rows)(mt3_engine_session *s, const int32_t *rows, int n_rows,
                     mt3_error *err);

    /* Number of currently active rows. */
    int (*active_rows)(const mt3_engine_session *s);
} mt3_engine_api;

/* The exported module has step_groups (exporter "mt3-infer-export/2"). */
#define MT3_ENGINE_CAP_STEP_GROUPS 1
/* The exported module has step_top2 (exporter "mt3-infer-export/5"). */
#define MT3_ENGINE_CAP_STEP_TOP2 2

typedef const mt3_engine_api *(*mt3_engine_get_api_fn)(void);

#ifdef __cplusplus
}
#endif

#endif

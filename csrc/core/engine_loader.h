/* engine_loader — open the network engine library and load models through it.
 *
 * The engine (libmt3_torch*.so, see engine/engine.h) is opened with dlopen()
 * the first time a model is loaded; the path comes from Python
 * (mt3_infer/_engine.py).  Opening happens once per process under a lock; a
 * failed attempt may be retried (e.g. after the user installs torch).
 *
 * mt3_model bundles the engine table, the engine's model handle and the
 * parsed mt3_infer.json: this file holds the one C reader of the metadata
 * (mt3_meta_parse); the engine hands the text over unparsed and receives the
 * dimensions it checks against (model_bind).  Callers above the loader
 * (decode, pipeline, the binding) read the model through mt3_model.  It is immutable after mt3_model_load and may be
 * shared by any number of threads.
 */
#ifndef MT3_ENGINE_LOADER_H
#define MT3_ENGINE_LOADER_H

#include <stddef.h>

#include "core/mt3_error.h"
#include "engine/engine.h"

/* Open the engine library at `path` (once per process) and return its table.
 * Later calls return the table already opened, whatever `path` says.
 * Errors: MT3_E_FRAMEWORK (missing file, dlopen/dlsym failure, ABI
 * mismatch) with a message naming the fix. */
int mt3_engine_open(const char *path, const mt3_engine_api **api, mt3_error *err);

/* The table opened so far, or NULL. */
const mt3_engine_api *mt3_engine_current(void);

#define MT3_META_STR 80

/* The artifact metadata (engine.h "mt3_infer.json", format_version 1). */
typedef struct mt3_model_meta {
    int format_version;
    char family[MT3_META_STR];
    int frames;      /* max encoder frames T */
    int min_frames;  /* smallest T accepted (== frames when absent) */
    int feature_bins;
    int channels;
    int n_layers, n_heads, d_kv;
    int memory_len, max_len, vocab_size;
    int start_id, eos_id, pad_id;
    int max_new_tokens;
    int check_first_eos;
    int encoder_kib; /* optional "encoder_kib_per_segment" (exporter 3): the encoder's measured
                        peak working memory per segment; 0 when absent */
    char source_sha256[MT3_META_STR];
    char exporter_version[MT3_META_STR];
} mt3_model_meta;

/* Parse and validate `len` bytes of mt3_infer.json text.  Unknown keys are
 * ignored; missing or ill-typed contract keys, other format versions and
 * inconsistent values give MT3_E_CHECKPOINT. */
int mt3_meta_parse(const char *json, size_t len, mt3_model_meta *out, mt3_error *err);

typedef struct mt3_model {
    const mt3_engine_api *api;
    mt3_engine_model *handle;
    mt3_model_meta meta;
    char *meta_json;   /* the artifact's mt3_infer.json text (owned) */
    char device[32];   /* the resolved device ("cpu", "cuda:0") */
    int caps;          /* MT3_ENGINE_CAP_* of the network */
    int cache_elem_bytes; /* bytes per value of the attention caches: 4 (fp32, int8), 2 (fp16/bf16) */
} mt3_model;

/* Open the engine (if needed) and load an exported model file. */
int mt3_model_load(const char *engine_path, const char *model_path,
                   const mt3_engine_load_opts *opts, mt3_model **out, mt3_error *err);

/* Free a model (NULL is fine).  No session of it may be alive. */
void mt3_model_free(mt3_model *m);

#endif

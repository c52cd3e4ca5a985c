#include "core/engine_loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------------------
 * Library opening: a mutex-protected one-time init (retried after failure).
 * ------------------------------------------------------------------------- */

static pthread_mutex_t g_engine_lock = PTHREAD_MUTEX_INITIALIZER;
static void *g_engine_handle;             /* guarded by g_engine_lock */
static const mt3_engine_api *g_engine_api; /* written once under the lock */

const mt3_engine_api *mt3_engine_current(void)
{
    pthread_mutex_lock(&g_engine_lock);
    const mt3_engine_api *api = g_engine_api;
    pthread_mutex_unlock(&g_engine_lock);
    return api;
}

int mt3_engine_open(const char *path, const mt3_engine_api **api, mt3_error *err)
{
    if (api)
        *api = NULL;
    int rc = MT3_OK;
    pthread_mutex_lock(&g_engine_lock);
    if (g_engine_api) {
        if (api)
            *api = g_engine_api;
        pthread_mutex_unlock(&g_engine_lock);
        return MT3_OK;
    }
    if (!path || !*path) {
        rc = mt3_error_set(err, MT3_E_FRAMEWORK,
                           "the libtorch engine library (libmt3_torch*.so) is not installed: "
                           "mt3-infer was built without torch. Install torch==2.x and reinstall "
                           "mt3-infer with `pip install --no-build-isolation mt3-infer`");
        goto out;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        rc = mt3_error_set(err, MT3_E_FRAMEWORK,
                           "the libtorch engine library '%s' is missing (%s); reinstall mt3-infer "
                           "with torch installed", path, strerror(errno));
        goto out;
    }
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        rc = mt3_error_set(err, MT3_E_FRAMEWORK,
                           "cannot load the libtorch engine '%s': %s. The torch package it was "
                           "built against may be missing or a different version; reinstall "
                           "mt3-infer against the installed torch", path, why ? why : "unknown error");
        goto out;
    }
    mt3_engine_get_api_fn get = NULL;
    *(void **)(&get) = dlsym(h, "mt3_engine_get_api");
    const mt3_engine_api *table = get ? get() : NULL;
    if (!table) {
        dlclose(h);
        rc = mt3_error_set(err, MT3_E_FRAMEWORK,
                           "'%s' is not an mt3-infer engine (no mt3_engine_get_api)", path);
        goto out;
    }
    const int complete = table->model_load && table->model_bind && table->model_free && table->model_meta_json &&
                         table->model_device && table->model_caps && table->session_new &&
                         table->session_free && table->session_set_threads && table->encode &&
                         table->append_rows && table->stage_rows && table->append_staged && table->step &&
                         table->step_groups && table->step_top2 && table->keep_rows && table->active_rows;
    if (table->abi_version != MT3_ENGINE_ABI_VERSION || !complete) {
        dlclose(h);
        rc = mt3_error_set(err, MT3_E_FRAMEWORK,
                           "engine '%s' has ABI version %d (expected %d) or an incomplete table; "
                           "rebuild mt3-infer", path, table->abi_version, MT3_ENGINE_ABI_VERSION);
        goto out;
    }
    g_engine_handle = h; /* kept open for the life of the process */
    g_engine_api = table;
    if (api)
        *api = table;
out:
    pthread_mutex_unlock(&g_engine_lock);
    return rc;
}

/* ---------------------------------------------------------------------------
 * mt3_infer.json: a strict reader for one flat JSON object.  Nested values
 * are validated and skipped.  Depth and sizes are bounded.
 * ------------------------------------------------------------------------- */

typedef struct jscan {
    const char *s;
    size_t n, i;
} jscan;

static void j_ws(jscan *j)
{
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' ||
                           j->s[j->i] == '\r'))
        j->i++;
}

static int j_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Reads a string; copies up to cap-1 bytes into out (if given). *trunc set
 * when it did not fit.  Escapes other than \uXXXX are decoded; \uXXXX
 * becomes '?'. */
static int j_string(jscan *j, char *out, size_t cap, int *trunc)
{
    size_t w = 0;
    if (trunc)
        *trunc = 0;
    if (j->i >= j->n || j->s[j->i] != '"')
        return 0;
    j->i++;
    while (j->i < j->n && j->s[j->i] != '"') {
        unsigned char c = (unsigned char)j->s[j->i];
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (++j->i >= j->n)
                return 0;
            char e = j->s[j->i];
            if (e == 'u') {
                if (j->i + 4 >= j->n)
                    return 0;
                for (int k = 1; k <= 4; k++)
                    if (!j_hex(j->s[j->i + k]))
                        return 0;
                j->i += 4;
                c = '?';
            } else if (e == 'n') {
                c = '\n';
            } else if (e == 't') {
                c = '\t';
            } else if (e == 'r') {
                c = '\r';
            } else if (e == 'b') {
                c = '\b';
            } else if (e == 'f') {
                c = '\f';
            } else if (e == '"' || e == '\\' || e == '/') {
                c = (unsigned char)e;
            } else {
                return 0;
            }
        }
        if (out) {
            if (w + 1 < cap)
                out[w++] = (char)c;
            else if (trunc)
                *trunc = 1;
        }
        j->i++;
    }
    if (j->i >= j->n)
        return 0;
    j->i++;
    if (out && cap)
        out[w] = '\0';
    return 1;
}

static int j_value(jscan *j, int depth);

static int j_compound(jscan *j, int depth)
{
    char open = j->s[j->i];
    char close = open == '{' ? '}' : ']';
    j->i++;
    j_ws(j);
    if (j->i < j->n && j->s[j->i] == close) {
        j->i++;
        return 1;
    }
    for (;;) {
        j_ws(j);
        if (open == '{') {
            if (!j_string(j, NULL, 0, NULL))
                return 0;
            j_ws(j);
            if (j->i >= j->n || j->s[j->i] != ':')
                return 0;
            j->i++;
        }
        if (!j_value(j, depth + 1))
            return 0;
        j_ws(j);
        if (j->i < j->n && j->s[j->i] == ',') {
            j->i++;
            continue;
        }
        if (j->i < j->n && j->s[j->i] == close) {
            j->i++;
            return 1;
        }
        return 0;
    }
}

static int j_scalar_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '+' || c == '.';
}

static int j_value(jscan *j, int depth)
{
    j_ws(j);
    if (j->i >= j->n || depth > 32)
        return 0;
    char c = j->s[j->i];
    if (c == '"')
        return j_string(j, NULL, 0, NULL);
    if (c == '{' || c == '[')
        return j_compound(j, depth);
    size_t start = j->i;
    while (j->i < j->n && j_scalar_char(j->s[j->i]))
        j->i++;
    return j->i > start;
}

/* Value kinds we read out of the object. */
enum { JV_INT, JV_BOOL, JV_STR };

typedef struct jfield {
    const char *key;
    int kind;
    void *dst;
    size_t cap; /* for strings */
    int required;
    int seen;
} jfield;

static int j_parse_int(const char *s, size_t n, int *out)
{
    size_t k = 0;
    int neg = 0;
    if (n == 0 || n > 12)
        return 0;
    if (s[0] == '-') {
        neg = 1;
        k = 1;
        if (n == 1)
            return 0;
    }
    long long v = 0;
    for (; k < n; k++) {
        if (s[k] < '0' || s[k] > '9')
            return 0;
        v = v * 10 + (s[k] - '0');
    }
    if (neg)
        v = -v;
    if (v < INT_MIN || v > INT_MAX)
        return 0;
    *out = (int)v;
    return 1;
}

int mt3_meta_parse(const char *json, size_t len, mt3_model_meta *m, mt3_error *err)
{
    if (!json || !m)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_meta_parse: NULL argument");
    memset(m, 0, sizeof *m);
    m->min_frames = -1;
    m->check_first_eos = -1;
    jfield fields[] = {
        {"format_version", JV_INT, &m->format_version, 0, 1, 0},
        {"family", JV_STR, m->family, sizeof m->family, 1, 0},
        {"frames", JV_INT, &m->frames, 0, 1, 0},
        {"min_frames", JV_INT, &m->min_frames, 0, 0, 0},
        {"encoder_kib_per_segment", JV_INT, &m->encoder_kib, 0, 0, 0},
        {"feature_bins", JV_INT, &m->feature_bins, 0, 1, 0},
        {"channels", JV_INT, &m->channels, 0, 1, 0},
        {"n_layers", JV_INT, &m->n_layers, 0, 1, 0},
        {"n_heads", JV_INT, &m->n_heads, 0, 1, 0},
        {"d_kv", JV_INT, &m->d_kv, 0, 1, 0},
        {"memory_len", JV_INT, &m->memory_len, 0, 1, 0},
        {"max_len", JV_INT, &m->max_len, 0, 1, 0},
        {"vocab_size", JV_INT, &m->vocab_size, 0, 1, 0},
        {"start_id", JV_INT, &m->start_id, 0, 1, 0},
        {"eos_id", JV_INT, &m->eos_id, 0, 1, 0},
        {"pad_id", JV_INT, &m->pad_id, 0, 1, 0},
        {"max_new_tokens", JV_INT, &m->max_new_tokens, 0, 1, 0},
        {"check_first_eos", JV_BOOL, &m->check_first_eos, 0, 1, 0},
        {"source_sha256", JV_STR, m->source_sha256, sizeof m->source_sha256, 1, 0},
        {"exporter_version", JV_STR, m->exporter_version, sizeof m->exporter_version, 1, 0},
    };
    const size_t nf = sizeof fields / sizeof fields[0];
    jscan j = {json, len, 0};
    j_ws(&j);
    if (j.i >= j.n || j.s[j.i] != '{')
        return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json is not a JSON object");
    j.i++;
    j_ws(&j);
    int empty = (j.i < j.n && j.s[j.i] == '}');
    if (empty)
        j.i++;
    while (!empty) {
        char key[64];
        int trunc = 0;
        j_ws(&j);
        if (!j_string(&j, key, sizeof key, &trunc))
            return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: malformed key at byte %zu", j.i);
        j_ws(&j);
        if (j.i >= j.n || j.s[j.i] != ':')
            return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: expected ':' at byte %zu", j.i);
        j.i++;
        j_ws(&j);
        size_t vstart = j.i;
        jfield *f = NULL;
        if (!trunc)
            for (size_t k = 0; k < nf; k++)
                if (strcmp(fields[k].key, key) == 0)
                    f = &fields[k];
        if (f && f->seen)
            return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: duplicate key \"%s\"", key);
        if (f && f->kind == JV_STR) {
            int t2 = 0;
            if (!j_string(&j, (char *)f->dst, f->cap, &t2))
                return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: \"%s\" must be a string", key);
            if (t2)
                return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: \"%s\" is too long", key);
        } else {
            if (!j_value(&j, 0))
                return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: malformed value for \"%s\"", key);
            if (f && f->kind == JV_INT) {
                if (!j_parse_int(j.s + vstart, j.i - vstart, (int *)f->dst))
                    return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: \"%s\" must be an integer", key);
            } else if (f && f->kind == JV_BOOL) {
                size_t vl = j.i - vstart;
                if (vl == 4 && memcmp(j.s + vstart, "true", 4) == 0)
                    *(int *)f->dst = 1;
                else if (vl == 5 && memcmp(j.s + vstart, "false", 5) == 0)
                    *(int *)f->dst = 0;
                else
                    return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: \"%s\" must be true or false", key);
            }
        }
        if (f)
            f->seen = 1;
        j_ws(&j);
        if (j.i < j.n && j.s[j.i] == ',') {
            j.i++;
            continue;
        }
        if (j.i < j.n && j.s[j.i] == '}') {
            j.i++;
            break;
        }
        return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: expected ',' or '}' at byte %zu", j.i);
    }
    j_ws(&j);
    if (j.i != j.n)
        return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: trailing bytes after the object");
    if (!fields[0].seen)
        return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json lacks \"format_version\"");
    if (m->format_version != 1)
        return mt3_error_set(err, MT3_E_CHECKPOINT,
                             "exported model has format_version %d; this mt3-infer reads version 1. "
                             "Re-export it with `mt3-infer export`", m->format_version);
    for (size_t k = 0; k < nf; k++)
        if (fields[k].required && !fields[k].seen)
            return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json lacks \"%s\"", fields[k].key);
    if (m->min_frames < 0)
        m->min_frames = m->frames;
    if (m->frames < 1 || m->frames > (1 << 20) || m->min_frames < 1 || m->min_frames > m->frames ||
        m->feature_bins < 1 || m->feature_bins > (1 << 20) || m->channels < 1 || m->channels > 4096 ||
        m->n_layers < 1 || m->n_layers > 4096 || m->n_heads < 1 || m->n_heads > 4096 || m->d_kv < 1 ||
        m->d_kv > 65536 || m->memory_len < 1 || m->max_len < 1 || m->max_len > (1 << 20) ||
        m->vocab_size < 2 || m->vocab_size > (1 << 24) || m->encoder_kib < 0)
        return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: dimensions out of range");
    if (m->max_new_tokens < 1 || m->max_new_tokens > m->max_len)
        return mt3_error_set(err, MT3_E_CHECKPOINT,
                             "mt3_infer.json: max_new_tokens %d outside 1..max_len (%d)",
                             m->max_new_tokens, m->max_len);
    if (m->start_id < 0 || m->start_id >= m->vocab_size || m->eos_id < 0 ||
        m->eos_id >= m->vocab_size || m->pad_id < 0 || m->pad_id >= m->vocab_size)
        return mt3_error_set(err, MT3_E_CHECKPOINT, "mt3_infer.json: special token ids outside the vocabulary");
    return MT3_OK;
}

/* ---------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------- */

int mt3_model_load(const char *engine_path, const char *model_path,
                   const mt3_engine_load_opts *opts, mt3_model **out, mt3_error *err)
{
    if (out)
        *out = NULL;
    if (!model_path || !out)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_model_load: NULL argument");
    const mt3_engine_api *api = NULL;
    int rc = mt3_engine_open(engine_path, &api, err);
    if (rc)
        return rc;
    mt3_model *m = calloc(1, sizeof *m);
    if (!m)
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory");
    m->api = api;
    const mt3_engine_load_opts def = {.device = "auto", .dtype = MT3_DTYPE_FLOAT32};
    const mt3_engine_load_opts *lo = opts ? opts : &def;
    m->cache_elem_bytes = lo->dtype == MT3_DTYPE_FLOAT16 || lo->dtype == MT3_DTYPE_BFLOAT16 ? 2 : 4;
    rc = api->model_load(model_path, lo, &m->handle, err);
    if (rc) {
        free(m);
        return rc;
    }
    const char *json = api->model_meta_json(m->handle);
    const char *dev = api->model_device(m->handle);
    m->meta_json = strdup(json ? json : "");
    if (!m->meta_json) {
        rc = mt3_error_set(err, MT3_E_NOMEM, "out of memory");
        goto fail;
    }
    snprintf(m->device, sizeof m->device, "%s", dev ? dev : "");
    rc = mt3_meta_parse(m->meta_json, strlen(m->meta_json), &m->meta, err);
    if (rc)
        goto fail;
    const mt3_model_meta *mm = &m->meta;
    const mt3_engine_dims dims = {
        .frames = mm->frames,
        .min_frames = mm->min_frames,
        .feature_bins = mm->feature_bins,
        .channels = mm->channels,
        .n_layers = mm->n_layers,
        .n_heads = mm->n_heads,
        .d_kv = mm->d_kv,
        .max_len = mm->max_len,
        .vocab_size = mm->vocab_size,
    };
    rc = api->model_bind(m->handle, &dims, err);
    if (rc)
        goto fail;
    m->caps = api->model_caps(m->handle);
    *out = m;
    return MT3_OK;
fail:
    mt3_model_free(m);
    return rc;
}

void mt3_model_free(mt3_model *m)
{
    if (!m)
        return;
    if (m->handle)
        m->api->model_free(m->handle);
    free(m->meta_json);
    free(m);
}

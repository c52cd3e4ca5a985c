// engine_torch.cpp — the libtorch implementation of engine.h.
// The only file in the project that includes torch headers.
//
// A model is an immutable torch::jit::Module plus its parsed metadata; a
// session owns the per-call tensors: cross-attention K/V from encode and a
// self-attention cache that grows by doubling up to meta "max_len".  Finished
// rows are dropped by compacting both caches in place (rows move towards the
// front, their order kept), so a step only ever computes active rows.
//
// The decoder step's attention is this file's TorchScript operator
// mt3::attend_rows (registered when the library is opened; exported modules
// call it): rows at different positions in one call, each computed alone.
//
// Every extern "C" entry point catches everything: c10::Error,
// std::exception and anything else become an mt3_status + message.
// TorchScript runs with the graph optimizer off for the calling thread
// (GraphOptimizerEnabledGuard is thread-local): no profiling runs, no
// shape specialisation, the same kernels on the first call as on the last.
#include <torch/script.h>
#include <ATen/Version.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <ATen/Parallel.h>
#include <c10/core/DeviceGuard.h>

#if __has_include(<torch/cuda.h>)
#include <torch/cuda.h>
#define MT3_HAVE_TORCH_CUDA_H 1
#endif

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <cmath>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "engine/engine.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

struct mt3_engine_model {
    torch::jit::Module module;
    std::string meta_json;
    std::string device_str;
    c10::Device device{c10::kCPU};
    at::ScalarType dtype = at::kFloat;
    bool int8 = false;  // fp32 with the decoder's linears in int8 (prepack_int8)
    int num_threads = 0;
    bool prepacked = false;
    bool step_groups = false;  // the module has step_groups (continuous batching)
    bool step_top2 = false;    // the module has step_top2 (beam-1 decoding, exporter 5)
    // dimensions bound by the loader (model_bind), from the parsed metadata
    bool bound = false;
    int frames = 0, min_frames = 1, feature_bins = 0, channels = 1;
    int n_layers = 0, n_heads = 0, d_kv = 0, max_len = 0, vocab = 0;
};

struct mt3_engine_session {
    const mt3_engine_model *m = nullptr;
    int max_rows = 0;
    int num_threads = 0;
    int active = 0;     // active rows
    int frames = 0;     // T' of the current encode
    int last_pos = -1;  // highest position written since encode
    bool encoded = false;
    at::Tensor cross_k, cross_v;  // [L, max_rows, H, T', Dh] (rows >= active unused)
    at::Tensor self_k, self_v;    // [L, max_rows, H, cap, Dh]
    int cap = 0;
    // Staged segments (stage_rows): cross K/V encoded ahead of a free slot,
    // rows [pool_head, pool_rows) of [L, pool_rows, H, T', Dh] still to hand out.
    at::Tensor pool_k, pool_v;
    int pool_head = 0, pool_rows = 0;
};

namespace {

// Error records.  Only the std::string overload allocates, and it is used
// inside guarded() bodies alone (a bad_alloc there is caught); everything
// outside a catch-all, and the catch handlers themselves, format into the
// caller's fixed-size record without allocating.
int set_err(mt3_error *err, int code, const char *msg)
{
    if (err) {
        err->code = code;
        std::snprintf(err->msg, sizeof err->msg, "%s", msg ? msg : "");
    }
    return code;
}

int set_err(mt3_error *err, int code, const std::string &msg)
{
    return set_err(err, code, msg.c_str());
}

int set_errf(mt3_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int set_errf(mt3_error *err, int code, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        std::vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

// "what: <first line of detail>", at most 700 bytes of the detail (a
// c10::Error's what() carries a long C++ backtrace after its first line).
int set_err_brief(mt3_error *err, int code, const char *what, const char *detail)
{
    if (err) {
        const char *d = detail ? detail : "";
        const char *nl = std::strchr(d, '\n');
        int n = nl ? static_cast<int>(nl - d) : static_cast<int>(std::strlen(d));
        if (n > 700)
            n = 700;
        err->code = code;
        std::snprintf(err->msg, sizeof err->msg, "%s: %.*s", what, n, d);
    }
    return code;
}

// First line of a c10::Error, as a string (inside guarded bodies only).
std::string brief(const char *what)
{
    std::string s(what ? what : "");
    size_t cut = s.find('\n');
    if (cut != std::string::npos)
        s.resize(cut);
    if (s.size() > 700)
        s.resize(700);
    return s;
}

// Wrap a body: catch everything, map to a status (the handlers do not allocate).
template <typename F>
int guarded(mt3_error *err, int fail_code, const char *what, F &&body)
{
    try {
        return body();
    } catch (const c10::Error &e) {
        return set_err_brief(err, fail_code, what, e.what_without_backtrace());
    } catch (const std::bad_alloc &) {
        return set_err_brief(err, MT3_E_NOMEM, what, "out of memory");
    } catch (const std::exception &e) {
        return set_err_brief(err, fail_code, what, e.what());
    } catch (...) {
        return set_err_brief(err, fail_code, what, "unknown C++ exception");
    }
}

// Resolve "cpu" / "cuda" / "cuda:N" / "auto".
// bf16 arithmetic on this CPU (the x86 feature bit; other architectures: no).
bool cpu_has_bf16()
{
#if defined(__x86_64__) && defined(__GNUC__)
    return __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

int resolve_device(const char *spec, c10::Device *dev, std::string *name, mt3_error *err)
{
    std::string s = spec && *spec ? spec : "auto";
    bool cuda_ok = false;
    long n_cuda = 0;
#ifdef MT3_HAVE_TORCH_CUDA_H
    cuda_ok = torch::cuda::is_available();
    n_cuda = cuda_ok ? static_cast<long>(torch::cuda::device_count()) : 0;
#endif
    if (s == "auto")
        s = cuda_ok ? "cuda:0" : "cpu";
    if (s == "cpu") {
        *dev = c10::Device(c10::kCPU);
        *name = "cpu";
        return MT3_OK;
    }
    if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
        long idx = 0;
        if (s.size() > 5) {
            std::string tail = s.substr(5);
            if (tail.empty() || tail.size() > 4 ||
                tail.find_first_not_of("0123456789") != std::string::npos)
                return set_err(err, MT3_E_VALUE, "device '" + s + "': expected cuda:N with a device number");
            idx = std::strtol(tail.c_str(), nullptr, 10);
        }
        if (!cuda_ok)
            return set_err(err, MT3_E_FRAMEWORK,
                           "device '" + s + "' requested but CUDA is not available to libtorch "
                           "(CPU-only torch build or no GPU); use device='cpu' or 'auto'");
        if (idx >= n_cuda)
            return set_err(err, MT3_E_VALUE,
                           "device '" + s + "': only " + std::to_string(n_cuda) + " CUDA device(s) present");
        *dev = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(idx));
        *name = "cuda:" + std::to_string(idx);
        return MT3_OK;
    }
    return set_err(err, MT3_E_VALUE, "unknown device '" + s + "'; use 'cpu', 'cuda', 'cuda:N' or 'auto'");
}

void apply_threads(int n)
{
    if (n > 0 && at::get_num_threads() != n)
        at::set_num_threads(n);
}

int thread_count(const mt3_engine_session *s)
{
    return s->num_threads > 0 ? s->num_threads : s->m->num_threads;
}

// Copy rows [src] -> [dst] of a [L, R, ...] tensor (dst <= src).
void move_row(at::Tensor &t, int dst, int src, int64_t len_dim3 = -1)
{
    at::Tensor from = t.select(1, src);
    at::Tensor to = t.select(1, dst);
    if (len_dim3 >= 0) {
        from = from.narrow(2, 0, len_dim3);
        to = to.narrow(2, 0, len_dim3);
    }
    to.copy_(from);
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

int model_load(const char *path, const mt3_engine_load_opts *opts, mt3_engine_model **out,
               mt3_error *err)
{
    if (out)
        *out = nullptr;
    if (!path || !out)
        return set_err(err, MT3_E_VALUE, "model_load: NULL argument");
    return guarded(err, MT3_E_CHECKPOINT, "cannot load the exported model", [&]() -> int {
        c10::InferenceMode guard;
        torch::jit::GraphOptimizerEnabledGuard opt(false);
        auto m = std::make_unique<mt3_engine_model>();
        const char *dev_spec = opts ? opts->device : "auto";
        int dtype = opts ? opts->dtype : MT3_DTYPE_FLOAT32;
        m->num_threads = opts ? opts->num_threads : 0;
        int rc = resolve_device(dev_spec, &m->device, &m->device_str, err);
        if (rc)
            return rc;
        if (dtype == MT3_DTYPE_FLOAT32)
            m->dtype = at::kFloat;
        else if (dtype == MT3_DTYPE_INT8) {
            if (!m->device.is_cpu())
                return set_err(err, MT3_E_VALUE,
                               "int8 is only offered on the CPU; on CUDA use float16 or bfloat16");
            m->dtype = at::kFloat;
            m->int8 = true;
        }
        else if (dtype == MT3_DTYPE_FLOAT16 || dtype == MT3_DTYPE_BFLOAT16) {
            // On the CPU only bf16, and only where the CPU has bf16 arithmetic
            // (AVX512-BF16, which every AMX CPU also has): elsewhere oneDNN
            // emulates it, slower than fp32.
            if (!m->device.is_cuda() && dtype == MT3_DTYPE_FLOAT16)
                return set_err(err, MT3_E_VALUE,
                               "float16 is only offered on CUDA devices; on the CPU use float32 (default) or "
                               "bfloat16 where the CPU has AVX512-BF16");
            if (!m->device.is_cuda() && !cpu_has_bf16())
                return set_err(err, MT3_E_VALUE,
                               "bfloat16 on the CPU needs AVX512-BF16 (Intel Cooper Lake/Sapphire Rapids or "
                               "newer, AMD Zen 4 or newer), which this CPU lacks; use dtype float32");
            m->dtype = dtype == MT3_DTYPE_FLOAT16 ? at::kHalf : at::kBFloat16;
        } else {
            return set_err(err, MT3_E_VALUE, "unknown dtype code " + std::to_string(dtype));
        }
        {
            FILE *f = std::fopen(path, "rb");
            if (!f)
                return set_err(err, MT3_E_IO, std::string("cannot open exported model '") + path +
                                                  "': " + std::strerror(errno));
            std::fclose(f);
        }
        apply_threads(m->num_threads);
        torch::jit::ExtraFilesMap extra{{"mt3_infer.json", ""}};
        try {
            m->module = torch::jit::load(path, m->device, extra);
        } catch (const c10::Error &e) {
            return set_err(err, MT3_E_CHECKPOINT,
                           std::string("'") + path + "' is not a loadable TorchScript file (" +
                               brief(e.what_without_backtrace()) +
                               "); pass a file written by `mt3-infer export` or the original checkpoint");
        }
        m->meta_json = extra["mt3_infer.json"];
        if (m->meta_json.empty())
            return set_err(err, MT3_E_CHECKPOINT,
                           std::string("'") + path +
                               "' carries no mt3_infer.json; it was not written by `mt3-infer export`. "
                               "Export the original checkpoint first.");
        for (const char *name : {"encode", "step"})
            if (!m->module.find_method(name))
                return set_err(err, MT3_E_CHECKPOINT,
                               std::string("exported model lacks the method '") + name + "'");
        m->step_groups = m->module.find_method("step_groups").has_value();
        m->step_top2 = m->module.find_method("step_top2").has_value();
        m->module.eval();
        if (m->dtype != at::kFloat)
            m->module.to(m->dtype);
        // CPU fp32: let the network keep oneDNN-packed copies of its decoder
        // weights (exported modules may offer prepack(batch_hint)).  Done
        // here, before the model is shared; failure keeps the plain path.
        const bool no_prepack = opts && opts->no_prepack;
        if (m->int8) {
            auto meth = m->module.find_method("prepack_int8");
            if (!meth)
                return set_err(err, MT3_E_CHECKPOINT,
                               std::string("'") + path +
                                   "' has no int8 path (exported before mt3-infer-export/4, or a family "
                                   "without one); re-export it, or use dtype float32");
            // torch 2.13 marks the quantized-tensor constructors deprecated
            // and says so on every call; the warning is not the user's.
            struct Quiet : c10::WarningHandler {
                void process(const c10::Warning &) override {}
            } quiet;
            c10::WarningUtils::WarningHandlerGuard hush(&quiet);
            (*meth)({});
        } else if (m->device.is_cpu() && m->dtype == at::kFloat && !no_prepack) {
            if (auto meth = m->module.find_method("prepack")) {
                try {
                    (*meth)({static_cast<int64_t>(16)});
                    m->prepacked = true;
                } catch (const std::exception &) {
                    m->prepacked = false;
                }
            }
        }
        *out = m.release();
        return MT3_OK;
    });
}

void model_free(mt3_engine_model *m)
{
    try {
        delete m;
    } catch (...) {
    }
}

int model_bind(mt3_engine_model *m, const mt3_engine_dims *d, mt3_error *err)
{
    if (!m || !d)
        return set_err(err, MT3_E_VALUE, "model_bind: NULL argument");
    if (m->bound)
        return set_err(err, MT3_E_VALUE, "model_bind: the model is bound already");
    if (d->frames < 1 || d->min_frames < 1 || d->min_frames > d->frames || d->feature_bins < 1 ||
        d->channels < 1 || d->n_layers < 1 || d->n_heads < 1 || d->d_kv < 1 || d->max_len < 1 ||
        d->vocab_size < 1)
        return set_err(err, MT3_E_VALUE, "model_bind: dimensions out of range");
    m->frames = d->frames;
    m->min_frames = d->min_frames;
    m->feature_bins = d->feature_bins;
    m->channels = d->channels;
    m->n_layers = d->n_layers;
    m->n_heads = d->n_heads;
    m->d_kv = d->d_kv;
    m->max_len = d->max_len;
    m->vocab = d->vocab_size;
    m->bound = true;
    return MT3_OK;
}

const char *model_meta_json(const mt3_engine_model *m)
{
    return m ? m->meta_json.c_str() : "";
}

const char *model_device(const mt3_engine_model *m)
{
    return m ? m->device_str.c_str() : "";
}

int session_new(const mt3_engine_model *m, int max_rows, mt3_engine_session **out, mt3_error *err)
{
    if (out)
        *out = nullptr;
    if (!m || !out)
        return set_err(err, MT3_E_VALUE, "session_new: NULL argument");
    if (max_rows < 1)
        return set_err(err, MT3_E_VALUE, "session_new: max_rows must be >= 1");
    if (!m->bound)
        return set_err(err, MT3_E_VALUE, "session_new: the model's dimensions are not bound (model_bind)");
    return guarded(err, MT3_E_INFERENCE, "session_new", [&]() -> int {
        auto s = std::make_unique<mt3_engine_session>();
        s->m = m;
        s->max_rows = max_rows;
        *out = s.release();
        return MT3_OK;
    });
}

void session_free(mt3_engine_session *s)
{
    try {
        delete s;
    } catch (...) {
    }
}

// A session call under the catch-all: inference mode, the model's device,
// no graph optimizer (the TorchScript methods run as written), this
// session's threads.
template <class F>
int in_session(mt3_engine_session *s, mt3_error *err, int fail_code, const char *what, F &&body)
{
    return guarded(err, fail_code, what, [&]() -> int {
        c10::InferenceMode guard;
        c10::OptionalDeviceGuard device_guard;
        if (!s->m->device.is_cpu())
            device_guard.reset_device(s->m->device);
        torch::jit::GraphOptimizerEnabledGuard opt(false);
        apply_threads(thread_count(s));
        return body();
    });
}

// Run the encoder on n_segments blocks; on success k/v hold cross keys and
// values [L, n_segments * C, H, T', Dh] (checked against the metadata).
int run_encoder(mt3_engine_session *s, const float *features, int n_segments, int frames, at::Tensor &k,
                at::Tensor &v, mt3_error *err)
{
    const mt3_engine_model *m = s->m;
    at::Tensor x = torch::from_blob(const_cast<float *>(features), {n_segments, frames, m->feature_bins},
                                    at::kFloat);
    if (!m->device.is_cpu() || m->dtype != at::kFloat)
        x = x.to(m->device, m->dtype);
    auto res = m->module.get_method("encode")({x});
    if (!res.isTuple())
        return set_err(err, MT3_E_INFERENCE, "encode returned no (keys, values) tuple");
    auto tup = res.toTuple();
    if (tup->elements().size() != 2)
        return set_err(err, MT3_E_INFERENCE, "encode returned a tuple of the wrong size");
    k = tup->elements()[0].toTensor();
    v = tup->elements()[1].toTensor();
    const int rows = n_segments * m->channels;
    if (k.dim() != 5 || k.size(0) != m->n_layers || k.size(1) != rows || k.size(2) != m->n_heads ||
        k.size(4) != m->d_kv || !v.sizes().equals(k.sizes()))
        return set_err(err, MT3_E_INFERENCE,
                       "encode returned cross keys/values of an unexpected shape " + c10::str(k.sizes()) +
                           " (metadata says L=" + std::to_string(m->n_layers) + ", rows=" +
                           std::to_string(rows) + ", H=" + std::to_string(m->n_heads) +
                           ", Dh=" + std::to_string(m->d_kv) + ")");
    return MT3_OK;
}

int check_encode_args(mt3_engine_session *s, const float *features, int n_segments, int frames, int rows_in_use,
                      const char *what, mt3_error *err)
{
    if (!s || !features)
        return set_errf(err, MT3_E_VALUE, "%s: NULL argument", what);
    const mt3_engine_model *m = s->m;
    if (n_segments < 1)
        return set_errf(err, MT3_E_VALUE, "%s: n_segments must be >= 1", what);
    if (static_cast<long long>(n_segments) * m->channels + rows_in_use > s->max_rows)
        return set_errf(err, MT3_E_VALUE, "%s: %d segments exceed the session's %d rows", what, n_segments,
                        s->max_rows);
    if (frames < m->min_frames || frames > m->frames)
        return set_errf(err, MT3_E_VALUE, "%s: %d frames per segment; this model accepts %d..%d", what, frames,
                        m->min_frames, m->frames);
    return MT3_OK;
}

// The shared body of encode, append_rows and stage_rows: encode, then `use` k/v.
template <class F>
int encode_more(mt3_engine_session *s, const float *features, int n_segments, int frames, mt3_error *err, F use)
{
    return in_session(s, err, MT3_E_INFERENCE, "encoder failed", [&]() -> int {
        at::Tensor k, v;
        int erc = run_encoder(s, features, n_segments, frames, k, v, err);
        if (erc)
            return erc;
        use(k, v);
        return MT3_OK;
    });
}

int encode(mt3_engine_session *s, const float *features, int n_segments, int frames, mt3_error *err)
{
    int rc = check_encode_args(s, features, n_segments, frames, 0, "encode", err);
    if (rc)
        return rc;
    const mt3_engine_model *m = s->m;
    s->encoded = false;
    s->active = 0;
    s->pool_head = s->pool_rows = 0;
    return encode_more(s, features, n_segments, frames, err, [&](const at::Tensor &k, const at::Tensor &v) {
        const int rows = n_segments * m->channels;
        s->cross_k = k.contiguous();
        s->cross_v = v.contiguous();
        // (Re)allocate the self-attention cache when the row count grew.
        if (!s->self_k.defined() || s->self_k.size(1) < rows || s->self_k.scalar_type() != k.scalar_type()) {
            int cap = std::min(m->max_len, 128);
            auto opts = k.options();
            s->self_k = at::empty({m->n_layers, rows, m->n_heads, cap, m->d_kv}, opts);
            s->self_v = at::empty_like(s->self_k);
            s->cap = cap;
        }
        s->frames = frames;
        s->active = rows;
        s->last_pos = -1;
        s->encoded = true;
    });
}

// Give a [L, R, ...] cache room for `rows` rows (dim 1), keeping rows
// [0, keep) and, when len_dim3 >= 0, positions [0, len_dim3) of dim 3.
void ensure_rows(at::Tensor &t, int rows, int keep, int64_t len_dim3 = -1)
{
    if (t.size(1) >= rows)
        return;
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    shape[1] = rows;
    at::Tensor n = at::empty(shape, t.options());
    if (keep > 0) {
        at::Tensor from = t.narrow(1, 0, keep), to = n.narrow(1, 0, keep);
        if (len_dim3 >= 0) {
            from = from.narrow(3, 0, len_dim3);
            to = to.narrow(3, 0, len_dim3);
        }
        if (len_dim3 != 0)
            to.copy_(from);
    }
    t = n;
}

// Rows k/v [L, rows, H, T', Dh] appended after the active ones (their self
// cache is filled from position 0 as they step).
void place_rows(mt3_engine_session *s, const at::Tensor &k, const at::Tensor &v)
{
    const int rows = static_cast<int>(k.size(1));
    ensure_rows(s->cross_k, s->max_rows, s->active);
    ensure_rows(s->cross_v, s->max_rows, s->active);
    ensure_rows(s->self_k, s->max_rows, s->active, s->last_pos + 1);
    ensure_rows(s->self_v, s->max_rows, s->active, s->last_pos + 1);
    s->cross_k.narrow(1, s->active, rows).copy_(k);
    s->cross_v.narrow(1, s->active, rows).copy_(v);
    s->active += rows;
}

// Checks shared by append_rows and stage_rows: an encoded session, the same
// frame count, and room for the rows (`in_use`: rows already taken).
int check_more_rows(mt3_engine_session *s, const float *features, int n_segments, int frames, int in_use,
                    const char *what, mt3_error *err)
{
    if (!s)
        return set_errf(err, MT3_E_VALUE, "%s: NULL session", what);
    if (!s->encoded)
        return set_errf(err, MT3_E_VALUE, "%s: call encode first", what);
    if (frames != s->frames)
        return set_errf(err, MT3_E_VALUE, "%s: frames differ from the session's encode", what);
    return check_encode_args(s, features, n_segments, frames, in_use, what, err);
}

int append_rows(mt3_engine_session *s, const float *features, int n_segments, int frames, mt3_error *err)
{
    int rc = check_more_rows(s, features, n_segments, frames, s ? s->active : 0, "append_rows", err);
    if (rc)
        return rc;
    return encode_more(s, features, n_segments, frames, err,
                       [&](const at::Tensor &k, const at::Tensor &v) { place_rows(s, k, v); });
}

int stage_rows(mt3_engine_session *s, const float *features, int n_segments, int frames, mt3_error *err)
{
    int rc = check_more_rows(s, features, n_segments, frames, 0, "stage_rows", err);
    if (rc)
        return rc;
    if (s->pool_head < s->pool_rows)
        return set_err(err, MT3_E_VALUE, "stage_rows: segments are still staged (append them first)");
    return encode_more(s, features, n_segments, frames, err, [&](const at::Tensor &k, const at::Tensor &v) {
        s->pool_k = k;  // the encoder's own output: no copy
        s->pool_v = v;
        s->pool_head = 0;
        s->pool_rows = static_cast<int>(k.size(1));
    });
}

int append_staged(mt3_engine_session *s, int n_segments, mt3_error *err)
{
    if (!s)
        return set_err(err, MT3_E_VALUE, "append_staged: NULL session");
    if (!s->encoded)
        return set_err(err, MT3_E_VALUE, "append_staged: call encode first");
    const long long rows = static_cast<long long>(n_segments) * s->m->channels;
    if (n_segments < 1 || rows > s->pool_rows - s->pool_head)
        return set_errf(err, MT3_E_VALUE, "append_staged: %d segments requested, %d staged", n_segments,
                        (s->pool_rows - s->pool_head) / s->m->channels);
    if (rows + s->active > s->max_rows)
        return set_errf(err, MT3_E_VALUE, "append_staged: %d segments exceed the session's %d rows", n_segments,
                        s->max_rows);
    return in_session(s, err, MT3_E_INFERENCE, "append_staged", [&]() -> int {
        const int r = static_cast<int>(rows);
        place_rows(s, s->pool_k.narrow(1, s->pool_head, r), s->pool_v.narrow(1, s->pool_head, r));
        s->pool_head += r;
        if (s->pool_head == s->pool_rows)
            s->pool_head = s->pool_rows = 0;
        return MT3_OK;
    });
}

// Grow the self cache along positions so that position `pos` fits (keeps 0..cap-1).
void grow_positions(mt3_engine_session *s, int pos)
{
    const mt3_engine_model *m = s->m;
    if (pos < s->cap)
        return;
    int cap = std::min(m->max_len, std::max(s->cap * 2, pos + 1));
    at::Tensor nk = at::empty({s->self_k.size(0), s->self_k.size(1), s->self_k.size(2), cap, s->self_k.size(4)},
                              s->self_k.options());
    at::Tensor nv = at::empty_like(nk);
    nk.narrow(3, 0, s->cap).copy_(s->self_k);
    nv.narrow(3, 0, s->cap).copy_(s->self_v);
    s->self_k = nk;
    s->self_v = nv;
    s->cap = cap;
}

// Checks shared by step and step_groups: an encoded session and token ids
// in the vocabulary for every active row.
int check_step(mt3_engine_session *s, const int64_t *tokens_in, const char *what, mt3_error *err)
{
    const mt3_engine_model *m = s->m;
    if (!s->encoded || s->active < 1)
        return set_errf(err, MT3_E_VALUE, "%s: no active rows (call encode first)", what);
    for (int i = 0; i < s->active; ++i)
        if (tokens_in[i] < 0 || tokens_in[i] >= m->vocab)
            return set_errf(err, MT3_E_VALUE, "%s: token id %lld outside the vocabulary", what,
                            static_cast<long long>(tokens_in[i]));
    return MT3_OK;
}

// Run the module's `method` over the active rows: (tokens, <middle...>,
// self_k, self_v, cross_k, cross_v) -> result, after growing the self cache
// to hold max_pos.  The shared body of step, step_groups and step_top2.
// `middle(args)` appends the method's arguments between the tokens and the
// caches, `collect(result, n)` copies the result out; both run inside the
// catch-all (building IValues allocates).
template <class Middle, class Collect>
int run_step(mt3_engine_session *s, const int64_t *tokens_in, const char *method, Middle &&middle, int max_pos,
             Collect &&collect, mt3_error *err)
{
    const mt3_engine_model *m = s->m;
    return in_session(s, err, MT3_E_INFERENCE, "decoder step failed", [&]() -> int {
        grow_positions(s, max_pos);
        const int n = s->active;
        at::Tensor tok = torch::from_blob(const_cast<int64_t *>(tokens_in), {n}, at::kLong);
        tok = m->device.is_cpu() ? tok.clone() : tok.to(m->device);
        std::vector<c10::IValue> args{tok};
        middle(args);
        args.push_back(s->self_k.narrow(1, 0, n));
        args.push_back(s->self_v.narrow(1, 0, n));
        args.push_back(s->cross_k.narrow(1, 0, n));
        args.push_back(s->cross_v.narrow(1, 0, n));
        c10::IValue res = m->module.get_method(method)(std::move(args));
        int rc = collect(res, n);
        if (rc)
            return rc;
        s->last_pos = std::max(s->last_pos, max_pos);
        return MT3_OK;
    });
}

// Copy a [shape...] result tensor of `count` elements of `type` to `out`.
int copy_result(const at::Tensor &t, at::ScalarType type, std::initializer_list<int64_t> shape, void *out,
                const char *method, mt3_error *err)
{
    if (t.sizes() != c10::IntArrayRef(shape))
        return set_err(err, MT3_E_INFERENCE,
                       std::string(method) + " returned a result of an unexpected shape " + c10::str(t.sizes()));
    at::Tensor c = t.to(at::kCPU, type).contiguous();
    std::memcpy(out, c.data_ptr(), c.nbytes());
    return MT3_OK;
}

// The next-id collector of step and step_groups.
auto ids_collector(int64_t *next_out, const char *method, mt3_error *err)
{
    return [=](const c10::IValue &res, int n) -> int {
        return copy_result(res.toTensor(), at::kLong, {n}, next_out, method, err);
    };
}

int step(mt3_engine_session *s, const int64_t *tokens_in, int pos, int64_t *next_out, mt3_error *err)
{
    if (!s || !tokens_in || !next_out)
        return set_err(err, MT3_E_VALUE, "step: NULL argument");
    const mt3_engine_model *m = s->m;
    if (pos < 0 || pos >= m->max_len)
        return set_errf(err, MT3_E_VALUE, "step: position %d outside 0..%d", pos, m->max_len - 1);
    if (s->encoded && pos > s->last_pos + 1)
        return set_err(err, MT3_E_VALUE, "step: positions must be fed in order (skipped one)");
    int rc = check_step(s, tokens_in, "step", err);
    if (rc)
        return rc;
    return run_step(
        s, tokens_in, "step", [&](std::vector<c10::IValue> &a) { a.emplace_back(static_cast<int64_t>(pos)); }, pos,
        ids_collector(next_out, "step", err), err);
}

// Checks of a grouped step (step_groups, step_top2): those of every step
// (check_step), then groups of >= 1 rows at positions inside the cache that
// add up to the active rows.  *max_pos receives the highest position.
int check_grouped_step(mt3_engine_session *s, const int64_t *tokens_in, int n_groups, const int32_t *sizes,
                       const int32_t *positions, const char *what, int *max_pos, mt3_error *err)
{
    const mt3_engine_model *m = s->m;
    *max_pos = 0;
    if (int rc = check_step(s, tokens_in, what, err))
        return rc;
    if (n_groups < 1 || n_groups > s->active)
        return set_errf(err, MT3_E_VALUE, "%s: bad group count", what);
    long long total = 0;
    for (int g = 0; g < n_groups; ++g) {
        if (sizes[g] < 1 || positions[g] < 0 || positions[g] >= m->max_len)
            return set_errf(err, MT3_E_VALUE, "%s: group %d has %d rows at position %d (positions 0..%d)", what,
                            g, static_cast<int>(sizes[g]), static_cast<int>(positions[g]), m->max_len - 1);
        total += sizes[g];
        *max_pos = std::max(*max_pos, static_cast<int>(positions[g]));
    }
    if (total != s->active)
        return set_errf(err, MT3_E_VALUE, "%s: group sizes add up to %lld, not the %d active rows", what, total,
                        s->active);
    return MT3_OK;
}

// The group sizes and positions as the TorchScript lists the methods take.
auto groups_middle(int n_groups, const int32_t *sizes, const int32_t *positions)
{
    return [=](std::vector<c10::IValue> &a) {
        c10::List<int64_t> sz, ps;
        for (int g = 0; g < n_groups; ++g) {
            sz.push_back(sizes[g]);
            ps.push_back(positions[g]);
        }
        a.emplace_back(std::move(sz));
        a.emplace_back(std::move(ps));
    };
}

int step_groups(mt3_engine_session *s, const int64_t *tokens_in, int n_groups, const int32_t *sizes,
                const int32_t *positions, int64_t *next_out, mt3_error *err)
{
    if (!s || !tokens_in || !next_out || !sizes || !positions)
        return set_err(err, MT3_E_VALUE, "step_groups: NULL argument");
    const mt3_engine_model *m = s->m;
    if (!m->step_groups)
        return set_err(err, MT3_E_FRAMEWORK,
                       "step_groups: this exported model has no step_groups method (exported by an older "
                       "mt3-infer); re-export it with `mt3-infer export` for continuous batching");
    int max_pos = 0;
    if (int rc = check_grouped_step(s, tokens_in, n_groups, sizes, positions, "step_groups", &max_pos, err))
        return rc;
    return run_step(s, tokens_in, "step_groups", groups_middle(n_groups, sizes, positions), max_pos,
                    ids_collector(next_out, "step_groups", err), err);
}

int step_top2(mt3_engine_session *s, const int64_t *tokens_in, int n_groups, const int32_t *sizes,
              const int32_t *positions, const float *live_logp, int64_t *ids_out, float *logp_out, mt3_error *err)
{
    if (!s || !tokens_in || !sizes || !positions || !live_logp || !ids_out || !logp_out)
        return set_err(err, MT3_E_VALUE, "step_top2: NULL argument");
    const mt3_engine_model *m = s->m;
    if (!m->step_top2)
        return set_err(err, MT3_E_FRAMEWORK,
                       "step_top2: this exported model has no step_top2 method (exported before "
                       "mt3-infer-export/5); re-export it with `mt3-infer export` for beam-1 decoding");
    int max_pos = 0;
    if (int rc = check_grouped_step(s, tokens_in, n_groups, sizes, positions, "step_top2", &max_pos, err))
        return rc;
    auto groups = groups_middle(n_groups, sizes, positions);
    auto middle = [&](std::vector<c10::IValue> &a) {
        groups(a);
        at::Tensor lp = torch::from_blob(const_cast<float *>(live_logp), {s->active}, at::kFloat);
        a.emplace_back(m->device.is_cpu() ? lp.clone() : lp.to(m->device));
    };
    auto collect = [&](const c10::IValue &res, int n) -> int {
        if (!res.isTuple() || res.toTupleRef().elements().size() != 2)
            return set_err(err, MT3_E_INFERENCE, "step_top2 returned no (ids, log-probabilities) pair");
        const auto &el = res.toTupleRef().elements();
        int r = copy_result(el[0].toTensor(), at::kLong, {n, 2}, ids_out, "step_top2", err);
        return r ? r : copy_result(el[1].toTensor(), at::kFloat, {n, 2}, logp_out, "step_top2", err);
    };
    return run_step(s, tokens_in, "step_top2", middle, max_pos, collect, err);
}

int model_caps(const mt3_engine_model *m)
{
    if (!m)
        return 0;
    return (m->step_groups ? MT3_ENGINE_CAP_STEP_GROUPS : 0) | (m->step_top2 ? MT3_ENGINE_CAP_STEP_TOP2 : 0);
}

int keep_rows(mt3_engine_session *s, const int32_t *rows, int n_rows, mt3_error *err)
{
    if (!s)
        return set_err(err, MT3_E_VALUE, "keep_rows: NULL session");
    if (!s->encoded)
        return set_err(err, MT3_E_VALUE, "keep_rows: call encode first");
    if (n_rows < 0 || n_rows > s->active || (n_rows > 0 && !rows))
        return set_err(err, MT3_E_VALUE, "keep_rows: bad row count");
    for (int i = 0; i < n_rows; ++i) {
        if (rows[i] < 0 || rows[i] >= s->active)
            return set_err(err, MT3_E_VALUE, "keep_rows: row index outside the active set");
        if (i > 0 && rows[i] <= rows[i - 1])
            return set_err(err, MT3_E_VALUE, "keep_rows: indices must be strictly ascending");
    }
    return in_session(s, err, MT3_E_INFERENCE, "keep_rows", [&]() -> int {
        const int64_t filled = s->last_pos + 1;
        for (int i = 0; i < n_rows; ++i) {
            int src = rows[i];
            if (src == i)
                continue;
            move_row(s->cross_k, i, src);
            move_row(s->cross_v, i, src);
            if (filled > 0) {
                move_row(s->self_k, i, src, filled);
                move_row(s->self_v, i, src, filled);
            }
        }
        s->active = n_rows;
        return MT3_OK;
    });
}

int active_rows(const mt3_engine_session *s)
{
    return s ? s->active : 0;
}

int session_set_threads(mt3_engine_session *s, int num_threads)
{
    if (!s)
        return MT3_E_VALUE;
    s->num_threads = num_threads > 0 ? num_threads : 0;
    return MT3_OK;
}

// ---------------------------------------------------------------------------
// mt3::attend_rows — the decoder step's attention for rows at different
// positions, one call per layer (exporter 6; mt3_infer/export/_groups.py).
//
//   attend_rows(q [N, H, Dh], k [N, H, S, Dh], v [N, H, S, Dh], sizes, lens)
//     -> [N, H * Dh]
//
// Rows come in contiguous groups: group g is the next sizes[g] rows, each
// attending to positions 0 .. lens[g]-1 of its own keys and values:
// softmax(q k^T) v, no 1/sqrt(Dh) scaling (T5).  On the CPU in float32 every
// (row, head) is computed alone by one thread, in a fixed order of
// operations that depends on nothing but that row's own length: a row's
// result is the same bit for bit whatever else is in the batch, so
// continuous batching (groups at many positions) gives exactly what drained
// batches (one group) give, and a step costs one call per layer instead of
// one chain of operations per group.  Other devices and dtypes run the
// plain operations group by group (matmul-softmax-matmul in float32, the
// fused kernel below it), which is what the exporter's per-group loop ran.
// ---------------------------------------------------------------------------

// The kernels of one (row, head): scores over `len` keys, softmax, weighted
// sum of values.  Each computes in one fixed order of its own; which one
// runs is chosen once per process from torch's CPU capability (so
// ATEN_CPU_CAPABILITY=default / avx2 select them as they select ATen's).

// Portable: dot products in 16 independent partial sums added pairwise.
inline float dot_portable(const float *a, const float *b, int n)
{
    float acc[16] = {0.0f};
    int d = 0;
    for (; d + 16 <= n; d += 16)
        for (int j = 0; j < 16; ++j)
            acc[j] += a[d + j] * b[d + j];
    for (int j = 0; d < n && j < 16; ++d, ++j)
        acc[j] += a[d] * b[d];
    for (int w = 8; w > 0; w /= 2)
        for (int j = 0; j < w; ++j)
            acc[j] += acc[j + w];
    return acc[0];
}

// exp(w - max) in place; returns 1 / their sum (added in position order).
inline float softmax_numerators(float *w, int len, float mx)
{
    float sum = 0.0f;
    for (int p = 0; p < len; ++p) {
        w[p] = std::exp(w[p] - mx);
        sum += w[p];
    }
    return 1.0f / sum;
}

void attend_portable(const float *q, const float *k, int64_t k_pos, const float *v, int64_t v_pos, int len, int dh,
                     float *w, float *out)
{
    float mx = -std::numeric_limits<float>::infinity();
    for (int p = 0; p < len; ++p) {
        w[p] = dot_portable(q, k + p * k_pos, dh);
        mx = std::max(mx, w[p]);
    }
    const float inv = softmax_numerators(w, len, mx);
    for (int d = 0; d < dh; ++d)
        out[d] = 0.0f;
    for (int p = 0; p < len; ++p) {
        const float c = w[p] * inv;
        const float *vp = v + p * v_pos;
        for (int d = 0; d < dh; ++d)
            out[d] += c * vp[d];
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define MT3_X86_KERNELS 1

// AVX2 + FMA, Dh a multiple of 8 (at most 128): two alternating partial
// sums per dot product; the output row held in registers.
__attribute__((target("avx2,fma"))) void attend_avx2(const float *q, const float *k, int64_t k_pos,
                                                     const float *v, int64_t v_pos, int len, int dh, float *w,
                                                     float *out)
{
    const int nv = dh / 8;
    float mx = -std::numeric_limits<float>::infinity();
    for (int p = 0; p < len; ++p) {
        const float *kp = k + p * k_pos;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int j = 0;
        for (; j + 1 < nv; j += 2) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * j), _mm256_loadu_ps(kp + 8 * j), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * j + 8), _mm256_loadu_ps(kp + 8 * j + 8), a1);
        }
        if (j < nv)
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * j), _mm256_loadu_ps(kp + 8 * j), a0);
        __m256 a = _mm256_add_ps(a0, a1);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        w[p] = _mm_cvtss_f32(h);
        mx = std::max(mx, w[p]);
    }
    const float inv = softmax_numerators(w, len, mx);
    __m256 o[16];
    for (int j = 0; j < nv; ++j)
        o[j] = _mm256_setzero_ps();
    for (int p = 0; p < len; ++p) {
        const __m256 c = _mm256_set1_ps(w[p] * inv);
        const float *vp = v + p * v_pos;
        for (int j = 0; j < nv; ++j)
            o[j] = _mm256_fmadd_ps(c, _mm256_loadu_ps(vp + 8 * j), o[j]);
    }
    for (int j = 0; j < nv; ++j)
        _mm256_storeu_ps(out + 8 * j, o[j]);
}

// AVX-512F, Dh a multiple of 16 (at most 128): as attend_avx2, 16 lanes.
__attribute__((target("avx512f"))) void attend_avx512(const float *q, const float *k, int64_t k_pos,
                                                      const float *v, int64_t v_pos, int len, int dh, float *w,
                                                      float *out)
{
    const int nv = dh / 16;
    float mx = -std::numeric_limits<float>::infinity();
    for (int p = 0; p < len; ++p) {
        const float *kp = k + p * k_pos;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int j = 0;
        for (; j + 1 < nv; j += 2) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + 16 * j), _mm512_loadu_ps(kp + 16 * j), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + 16 * j + 16), _mm512_loadu_ps(kp + 16 * j + 16), a1);
        }
        if (j < nv)
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + 16 * j), _mm512_loadu_ps(kp + 16 * j), a0);
        w[p] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
        mx = std::max(mx, w[p]);
    }
    const float inv = softmax_numerators(w, len, mx);
    __m512 o[8];
    for (int j = 0; j < nv; ++j)
        o[j] = _mm512_setzero_ps();
    for (int p = 0; p < len; ++p) {
        const __m512 c = _mm512_set1_ps(w[p] * inv);
        const float *vp = v + p * v_pos;
        for (int j = 0; j < nv; ++j)
            o[j] = _mm512_fmadd_ps(c, _mm512_loadu_ps(vp + 16 * j), o[j]);
    }
    for (int j = 0; j < nv; ++j)
        _mm512_storeu_ps(out + 16 * j, o[j]);
}
#endif

using attend_kernel = void (*)(const float *, const float *, int64_t, const float *, int64_t, int, int, float *,
                               float *);

// The kernel for head size dh: torch's CPU capability (read once, like ATen's
// own dispatch) and the head size decide.
attend_kernel pick_attend_kernel(int dh)
{
#ifdef MT3_X86_KERNELS
    static const std::string cap = at::get_cpu_capability();  // "AVX512", "AVX2" or "DEFAULT"
    if (cap == "AVX512" && dh % 16 == 0 && dh <= 128)
        return attend_avx512;
    if ((cap == "AVX512" || cap == "AVX2") && dh % 8 == 0 && dh <= 128)
        return attend_avx2;
#endif
    return attend_portable;
}

at::Tensor attend_rows_fallback(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v,
                                c10::IntArrayRef sizes, c10::IntArrayRef lens)
{
    const int64_t h = q.size(1), dh = q.size(2);
    std::vector<at::Tensor> outs;
    int64_t r0 = 0;
    for (size_t g = 0; g < sizes.size(); ++g) {
        const int64_t sz = sizes[g], len = lens[g];
        at::Tensor qg = q.narrow(0, r0, sz).unsqueeze(2);
        at::Tensor kg = k.narrow(0, r0, sz).narrow(2, 0, len);
        at::Tensor vg = v.narrow(0, r0, sz).narrow(2, 0, len);
        at::Tensor o;
        if (q.scalar_type() == at::kFloat)
            o = at::matmul(at::softmax(at::matmul(qg, kg.transpose(-1, -2)), -1), vg);
        else
            o = at::scaled_dot_product_attention(qg, kg, vg, {}, 0.0, false, 1.0);
        outs.push_back(o.reshape({sz, h * dh}));
        r0 += sz;
    }
    return outs.size() == 1 ? outs[0] : at::cat(outs, 0);
}

at::Tensor attend_rows_op(const at::Tensor &q_in, const at::Tensor &k, const at::Tensor &v,
                          c10::IntArrayRef sizes, c10::IntArrayRef lens)
{
    TORCH_CHECK(q_in.dim() == 3 && k.dim() == 4 && v.dim() == 4,
                "attend_rows: q must be [N, H, Dh], k and v [N, H, S, Dh]");
    const int64_t n = q_in.size(0), h = q_in.size(1), dh = q_in.size(2), s = k.size(2);
    TORCH_CHECK(k.size(0) == n && v.size(0) == n && k.size(1) == h && v.size(1) == h && k.size(3) == dh &&
                    v.size(3) == dh && v.size(2) == s,
                "attend_rows: q, k and v disagree in shape");
    TORCH_CHECK(k.scalar_type() == q_in.scalar_type() && v.scalar_type() == q_in.scalar_type() &&
                    k.device() == q_in.device() && v.device() == q_in.device(),
                "attend_rows: q, k and v must share dtype and device");
    TORCH_CHECK(sizes.size() == lens.size() && !sizes.empty(), "attend_rows: sizes and lens must be non-empty "
                "lists of one length");
    int64_t total = 0, max_len = 0;
    for (size_t g = 0; g < sizes.size(); ++g) {
        TORCH_CHECK(sizes[g] >= 1 && lens[g] >= 1 && lens[g] <= s, "attend_rows: an empty group or a length "
                    "outside 1..", s);
        total += sizes[g];
        max_len = std::max<int64_t>(max_len, lens[g]);
    }
    TORCH_CHECK(total == n, "attend_rows: group sizes add up to ", total, " rows, not ", n);
    if (!q_in.device().is_cpu() || q_in.scalar_type() != at::kFloat)
        return attend_rows_fallback(q_in, k, v, sizes, lens);
    at::Tensor q = q_in.stride(2) == 1 ? q_in : q_in.contiguous();
    at::Tensor kk = k.stride(3) == 1 ? k : k.contiguous();
    at::Tensor vv = v.stride(3) == 1 ? v : v.contiguous();
    at::Tensor out = at::empty({n, h * dh}, q.options());
    std::vector<int> row_len(static_cast<size_t>(n));
    for (size_t g = 0, r = 0; g < sizes.size(); ++g)
        for (int64_t i = 0; i < sizes[g]; ++i)
            row_len[r++] = static_cast<int>(lens[g]);
    const float *qp = q.data_ptr<float>();
    const float *kp = kk.data_ptr<float>();
    const float *vp = vv.data_ptr<float>();
    float *op = out.data_ptr<float>();
    const int64_t qs0 = q.stride(0), qs1 = q.stride(1);
    const int64_t ks0 = kk.stride(0), ks1 = kk.stride(1), ks2 = kk.stride(2);
    const int64_t vs0 = vv.stride(0), vs1 = vv.stride(1), vs2 = vv.stride(2);
    // threads split the (row, head) pairs; small calls stay on one thread
    const int64_t work = n * h * max_len * dh;
    const int64_t grain = work < (1 << 17) ? n * h : 1;
    const attend_kernel kernel = pick_attend_kernel(static_cast<int>(dh));
    at::parallel_for(0, n * h, grain, [&](int64_t b, int64_t e) {
        std::vector<float> w(static_cast<size_t>(max_len));
        for (int64_t t = b; t < e; ++t) {
            const int64_t r = t / h, hh = t % h;
            kernel(qp + r * qs0 + hh * qs1, kp + r * ks0 + hh * ks1, ks2, vp + r * vs0 + hh * vs1, vs2, row_len[r],
                   static_cast<int>(dh), w.data(), op + r * h * dh + hh * dh);
        }
    });
    return out;
}

const mt3_engine_api kApi = {
    MT3_ENGINE_ABI_VERSION,
    model_load,
    model_bind,
    model_free,
    model_meta_json,
    model_device,
    model_caps,
    session_new,
    session_free,
    session_set_threads,
    encode,
    append_rows,
    stage_rows,
    append_staged,
    step,
    step_groups,
    step_top2,
    keep_rows,
    active_rows,
};

}  // namespace

TORCH_LIBRARY(mt3, m)
{
    m.def("attend_rows(Tensor q, Tensor k, Tensor v, int[] sizes, int[] lens) -> Tensor");
}

TORCH_LIBRARY_IMPL(mt3, CompositeExplicitAutograd, m)
{
    m.impl("attend_rows", &attend_rows_op);
}

extern "C" __attribute__((visibility("default"))) const mt3_engine_api *mt3_engine_get_api(void)
{
    return &kApi;
}

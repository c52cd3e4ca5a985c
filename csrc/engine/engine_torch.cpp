// engine_torch.cpp — the libtorch implementation of engine.h.
// The only file in the project that includes torch headers.
// (Placeholder until the engine work fills in the table.)
#include <torch/script.h>

#include <cstdio>

#include "engine/engine.h"

namespace {

int set_err(mt3_error *err, int code, const char *msg)
{
    if (err) {
        err->code = code;
        std::snprintf(err->msg, sizeof err->msg, "%s", msg);
    }
    return code;
}

int model_load(const char *, const mt3_engine_load_opts *, mt3_engine_model **out, mt3_error *err)
{
    if (out)
        *out = nullptr;
    return set_err(err, MT3_E_FRAMEWORK, "libtorch engine: not implemented yet");
}

const mt3_engine_api kApi = {
    MT3_ENGINE_ABI_VERSION, model_load, nullptr, nullptr, nullptr, nullptr,
    nullptr, nullptr, nullptr, nullptr, nullptr,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const mt3_engine_api *mt3_engine_get_api(void)
{
    return &kApi;
}

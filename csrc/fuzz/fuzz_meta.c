/* libFuzzer target: the exported model's mt3_infer.json reader. */
#include <stdint.h>

#include "core/engine_loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mt3_model_meta m;
    mt3_error err;
    mt3_error_clear(&err);
    mt3_meta_parse((const char *)data, size, &m, &err);
    return 0;
}

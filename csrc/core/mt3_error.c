#include "core/mt3_error.h"

#include <stdarg.h>
#include <stdio.h>

void mt3_error_clear(mt3_error *err)
{
    if (!err)
        return;
    err->code = MT3_OK;
    err->msg[0] = '\0';
}

int mt3_error_set(mt3_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

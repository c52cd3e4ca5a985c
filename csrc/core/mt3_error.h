/* Error records shared by every C stage.
 *
 * Convention: a function that can fail returns an int status (MT3_OK == 0 on
 * success) and fills a caller-owned mt3_error.  No stage allocates error
 * strings; the message lives inside the record.  csrc/python/ maps the codes
 * to Python exception classes in one place (py_common.c). */
#ifndef MT3_ERROR_H
#define MT3_ERROR_H

#include <stddef.h>

typedef enum mt3_status {
    MT3_OK = 0,
    MT3_E_VALUE = 1,      /* bad argument from the caller          -> ValueError    */
    MT3_E_AUDIO = 2,      /* unusable audio                         -> AudioError    */
    MT3_E_NOMEM = 3,      /* allocation failed                      -> MemoryError   */
    MT3_E_CHECKPOINT = 4, /* bad model file / metadata              -> CheckpointError */
    MT3_E_FRAMEWORK = 5,  /* libtorch engine missing or unusable    -> FrameworkError */
    MT3_E_INFERENCE = 6,  /* failure while running the network      -> InferenceError */
    MT3_E_IO = 7,         /* file system                            -> OSError       */
    MT3_E_INTERNAL = 8,   /* a bug: invariant broken                -> RuntimeError  */
    MT3_E_CANCELLED = 9   /* cancelled by the caller (Ctrl-C)       -> KeyboardInterrupt */
} mt3_status;

#define MT3_ERROR_MSG_LEN 1024

typedef struct mt3_error {
    int code;
    char msg[MT3_ERROR_MSG_LEN];
} mt3_error;

/* Clear a record (code MT3_OK, empty message). Safe on NULL. */
void mt3_error_clear(mt3_error *err);

/* Fill a record printf-style and return `code`, so callers can write
 *     return mt3_error_set(err, MT3_E_VALUE, "bad %s", what);
 * Safe on NULL err (then only returns code). */
int mt3_error_set(mt3_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif

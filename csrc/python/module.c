/* mt3_infer._core: module init.  Each area registers its own functions and
 * types (py_features.c, py_codec.c, py_adapters.c, py_io.c). */
#define MT3_PY_MODULE_C
#include "python/py_common.h"

#include "engine/engine.h"

/* Single-phase init (m_size -1): one module per process; its state
 * (exception classes, the note dtype) is made once by mt3py_state_init. */
static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    "mt3_infer._core",
    "Native core of mt3-infer: audio, features, decoding, notes, MIDI, adapters.",
    -1,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    PyObject *m = PyModule_Create(&core_module);
    if (!m)
        return NULL;
    if (mt3py_state_init(m) < 0 || PyModule_AddIntConstant(m, "ENGINE_ABI_VERSION", MT3_ENGINE_ABI_VERSION) < 0 ||
        mt3py_register_features(m) < 0 || mt3py_register_codec(m) < 0 ||
        mt3py_register_adapters(m) < 0 || mt3py_register_io(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

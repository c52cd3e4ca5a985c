/* Placeholder: filled in by the adapters work. */
#include "python/py_common.h"

int mt3py_register_adapters(PyObject *m)
{
    (void)m;
    return 0;
}

/* Placeholder: filled in by the codec work. */
#include "python/py_common.h"

int mt3py_register_codec(PyObject *m)
{
    (void)m;
    return 0;
}

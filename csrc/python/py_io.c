/* Placeholder: filled in by the io work. */
#include "python/py_common.h"

int mt3py_register_io(PyObject *m)
{
    (void)m;
    return 0;
}

/* Placeholder: filled in by the features work. */
#include "python/py_common.h"

int mt3py_register_features(PyObject *m)
{
    (void)m;
    return 0;
}

"""One BLAS thread for the runtime's processes, set before numpy loads.

numpy's OpenBLAS starts one worker per core and, between the small matrix products of a
2x256 MLP, its workers spin: measured here, the controller at 20 Hz kept a whole core at
~100 % (with one thread: ~2 %). On the robot computer that core belongs to the driver or the
generator. OpenBLAS reads its thread count once, when numpy is imported, so this must run
before that; a value the user set in the environment is kept.
"""

from __future__ import annotations

import os
import sys

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded_blas() -> bool:
    """Ask for one BLAS thread; False when numpy is already loaded (too late: the process that
    imported it first decides, e.g. a test importing the node module)."""
    if "numpy" in sys.modules:
        return False
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    return True

"""Threads, set in one place: every pool of the process follows ``train.n_jobs``.

Training and scoring run LightGBM (OpenMP), scikit-learn and statsmodels (BLAS, OpenMP), econml
(whose nuisance models are the LightGBM models it is given; it starts no pool of its own unless
asked for Ray), joblib and numba (TreeSHAP). Each sizes its pool from the machine, not from what
is free, so :func:`thread_limits` caps them all at ``n_jobs`` for a stage:

- BLAS and OpenMP pools through threadpoolctl's ``threadpool_limits``;
- LightGBM through its ``LGBM_SetMaxThreads``, which caps even a model unpickled with the
  ``n_jobs`` it was trained with (scoring on another machine);
- joblib's default ``n_jobs`` (``parallel_config``), numba's thread count.

How a pool waits matters as much as its size. GNU OpenMP's threads spin between parallel regions
(``OMP_WAIT_POLICY`` unset), and LightGBM opens several regions per tree: on a machine whose
cores are busy, a spinning thread takes the core its partner (or a neighbouring job) needs, and
each tree waits for the scheduler. The effects step fits thousands of small trees, so it suffered
most. Measured with n_jobs 2 on 2 cores shared with other jobs: the effects step of a 600-account
book took 343 s spinning and 34 s waiting passively (load 8–10); of the default 10,000-account
world, 319–748 s spinning and 114–222 s passively (load 3–5). On a quiet machine passive waiting
costs a little: 66–71 s spinning, 79–86 s passively. OpenMP reads its wait policy once, when a
library first loads it, so :func:`wait_passively` runs when ``pipeline`` is imported, before any
of them; ``OMP_WAIT_POLICY=active`` in the environment keeps spinning on a machine of one's own.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

WAIT_POLICY = "OMP_WAIT_POLICY"


def wait_passively() -> None:
    """Make OpenMP threads sleep rather than spin while they wait, unless the environment
    already says how (``OMP_WAIT_POLICY=active`` for a machine of one's own).

    Effective only before LightGBM or scikit-learn is imported (OpenMP reads it once, on load).
    """
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")


@contextmanager
def thread_limits(n_jobs: int) -> Iterator[None]:
    """Cap every thread pool of the process at ``n_jobs`` for the block; restore them after.

    Args:
        n_jobs: threads for BLAS, OpenMP, LightGBM, joblib and numba (``train.n_jobs``).
    """
    # imported here, not at the top: ``pipeline`` imports this module before anything loads
    # OpenMP (see wait_passively), and every command, `--help` too, imports ``pipeline``
    import joblib
    import numba
    from lightgbm.basic import _LIB
    from threadpoolctl import threadpool_limits

    n_jobs = max(1, int(n_jobs))
    with ExitStack() as stack:
        # numba first: starting its OpenMP pool resets OpenMP's thread count, which
        # threadpool_limits then sets
        numba_before = numba.get_num_threads()
        numba.set_num_threads(min(n_jobs, numba.config.NUMBA_NUM_THREADS))
        stack.callback(numba.set_num_threads, numba_before)
        stack.enter_context(threadpool_limits(limits=n_jobs))
        stack.enter_context(joblib.parallel_config(n_jobs=n_jobs))
        before = ctypes.c_int(-1)
        _LIB.LGBM_GetMaxThreads(ctypes.byref(before))
        _LIB.LGBM_SetMaxThreads(ctypes.c_int(n_jobs))
        stack.callback(_LIB.LGBM_SetMaxThreads, ctypes.c_int(before.value))
        yield

"""Memory the score stage reuses: its large arrays come from the heap and stay there between
chunks, instead of being mapped fresh from the system for each.

glibc serves every allocation above its ``mmap`` threshold (32 MB at most) with a new mapping and
unmaps it on free, so each of the page of reasons' arrays of 100,000 rows × 150 features
(120 MB: the members' contributions, their sum, the points, the expansion model's) is zeroed
page by page by the kernel on first touch, every chunk. Measured on the default world's
champion with a LightGBM member, 100,000 rows, best of three on 2 quiet cores (2026-12-05):
the page of reasons took 3.36 s with 1.09 s of system time (43,000 page faults); with mappings
off and the heap kept (below) 2.54–2.76 s with 0.06 s. Plain scoring, whose arrays are smaller,
moved from 1.00 s to 0.93–0.97 s.

:func:`reuse_memory` sets, for a block, glibc's ``M_MMAP_MAX`` to 0 (no mappings: every block
from the heap) and ``M_TRIM_THRESHOLD`` high (freed memory is not returned at once), then puts
back the thresholds glibc reaches by itself in a process that frees large arrays, and trims.
The process's peak memory is what it was (the same arrays, reused); what it holds between
chunks is that peak. Elsewhere than glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4  # mallopt's, from glibc's malloc.h
KEPT = {M_TRIM_THRESHOLD: 2**31 - 1, M_MMAP_MAX: 0}
# after the block: setting any of these ends glibc's own adjustment of the mmap threshold (which
# rises with the blocks a process frees, up to 32 MB, the trim threshold at twice it), so the
# state it reaches in a process that has freed large arrays is put back, fixed
AFTER = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 64 * 2**20}


@contextmanager
def reuse_memory() -> Iterator[bool]:
    """Large arrays from the heap, kept for reuse, within the block; yields whether it applies
    (glibc only)."""
    libc = _glibc()
    if libc is None:
        yield False
        return
    applied = all(libc.mallopt(key, value) == 1 for key, value in KEPT.items())
    try:
        yield applied
    finally:
        for key, value in AFTER.items():
            libc.mallopt(key, value)
        libc.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc

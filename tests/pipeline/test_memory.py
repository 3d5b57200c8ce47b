"""Within reuse_memory a large array freed and made again reuses the heap (no fresh pages)."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest

from pipeline.memory import reuse_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
SIZE = 64 * 2**20 // 8  # 64 MB of float64: above glibc's largest mmap threshold (32 MB)


def faults_of_second(size: int) -> int:
    """Minor page faults taken by filling a new array of ``size`` floats after one was freed."""
    np.ones(size)  # made, filled and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(size)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_large_arrays_reuse_the_heap_within_the_block_and_not_after():
    hugepages = np._core.multiarray._set_madvise_hugepage(False)  # count 4 KB pages
    try:
        pages = SIZE * 8 // resource.getpagesize()
        # before: every new 64 MB array is mapped fresh, each page faulted in
        assert faults_of_second(SIZE) > pages // 2
        with reuse_memory() as applied:
            assert applied
            # within: the freed array's heap is reused, almost no page is new
            assert faults_of_second(SIZE) < pages // 10
        # after: glibc's defaults are back
        assert faults_of_second(SIZE) > pages // 2
    finally:
        np._core.multiarray._set_madvise_hugepage(hugepages)

"""Within reuse_memory a large array freed and made again reuses the heap (no fresh pages).

The page faults are counted in a fresh interpreter: a process that has already run a score
stage (as an xdist worker may have) can hold a large free chunk in its heap, which then serves
any large array without a fresh mapping, before the block as after it.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
ROOT = Path(__file__).resolve().parents[2]

MEASURE = """
import json, resource
import numpy as np
from pipeline.memory import reuse_memory

SIZE = 64 * 2**20 // 8  # 64 MB of float64: above glibc's largest mmap threshold (32 MB)
np._core.multiarray._set_madvise_hugepage(False)  # count 4 KB pages


def faults_of_second():
    np.ones(SIZE)  # made, filled and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(SIZE)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


first = faults_of_second()
with reuse_memory() as applied:
    within = faults_of_second()
after = faults_of_second()
print(json.dumps({"applied": applied, "before": first, "within": within, "after": after,
                  "pages": SIZE * 8 // resource.getpagesize()}))
"""


def measure(script: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_large_arrays_reuse_the_heap_within_the_block_and_not_after():
    faults = measure(MEASURE)
    pages = faults["pages"]
    assert faults["applied"]
    # before: every new 64 MB array is mapped fresh, each page faulted in
    assert faults["before"] > pages // 2
    # within: the freed array's heap is reused, almost no page is new
    assert faults["within"] < pages // 10
    # after: glibc's defaults are back
    assert faults["after"] > pages // 2

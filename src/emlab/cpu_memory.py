"""Keep freed memory inside the process, so the engine's large per-step temporaries do not page-fault.

Why: glibc hands every freed block over its mmap/trim thresholds back to the kernel, so each decoding step
re-faults its 25 MB logits and probability buffers page by page: on this 2-core CPU that made the token
draw 3x slower and sampling 12% slower overall (docs/benchmarks.md). Raising both thresholds with
`mallopt` makes such blocks come from, and return to, the heap. The cost is that the process keeps its
peak heap instead of shrinking after it; elsewhere than glibc this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # glibc mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they were raised."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    trim = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    mmap = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
    return bool(trim and mmap)

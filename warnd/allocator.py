"""How warnd asks the C library's allocator to treat the detectors' temporary arrays.

Judging many series makes and frees arrays of a few hundred kB to a few MB hundreds
of times a second (a block of baseline windows, a change-time table). glibc serves a
block that large with a fresh memory mapping by default and unmaps it on free (its
threshold rises only as far as the largest block freed so far, and the heap's free
top is given back above twice that), so each new array costs page faults — measured
at several times the arithmetic it holds. :func:`keep_freed_blocks` asks glibc to
serve blocks below ``MMAP_THRESHOLD`` from its heap and to give the heap's free top
back only beyond ``TRIM_THRESHOLD``: freed blocks are reused without faults, and at
most ``TRIM_THRESHOLD`` of freed memory stays with the process (the daemon gives it
back after each detect pass, :func:`release_freed_blocks`). Elsewhere (another C
library) nothing changes.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

#: Blocks smaller than this come from the heap (glibc's default starts at 128 kB).
MMAP_THRESHOLD = 16 << 20
#: Freed memory at the heap's top beyond this is given back to the system.
TRIM_THRESHOLD = 32 << 20
# mallopt parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def _glibc() -> Any:
    """glibc, or None (another system or C library)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's name on Linux
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None  # not glibc
    return libc


def keep_freed_blocks() -> bool:
    """Set the thresholds above; True when glibc took them (False elsewhere)."""
    libc = _glibc()  # mallopt returns 1 when it took the value
    return libc is not None and (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                                 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)


def release_freed_blocks() -> None:
    """Give the freed memory the heap keeps back to the system (``malloc_trim``): for
    a process that idles between cycles, so what a cycle freed does not stay with
    it. Nothing elsewhere."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)

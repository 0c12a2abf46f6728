"""prometheus-client's multiprocess files with their disk space reserved before use.

In multiprocess mode every value lives in a memory-mapped file under
`PROMETHEUS_MULTIPROC_DIR`, grown with `truncate`: on a full file system (a small tmpfs) the
file grows sparse and the first write into the missing page kills the process with SIGBUS.
Reserving the blocks with `posix_fallocate` first turns that into an OSError (ENOSPC), which
`service.metrics` catches: metrics stop, logged once, and serving goes on.
"""

from __future__ import annotations

import os

from prometheus_client import mmap_dict, values

ENTRY_OVERHEAD = 32  # an entry's length, padding and two doubles besides its key


class ReservedMmapedDict(mmap_dict.MmapedDict):
    def __init__(self, filename: str, read_mode: bool = False) -> None:
        if not read_mode:
            reserve(filename, mmap_dict._INITIAL_MMAP_SIZE)
        super().__init__(filename, read_mode)

    def _init_value(self, key: str) -> None:
        needed = self._used + len(key.encode()) + ENTRY_OVERHEAD
        capacity = self._capacity
        while needed > capacity:
            capacity *= 2
        if capacity != self._capacity:
            os.posix_fallocate(self._f.fileno(), 0, capacity)
        super()._init_value(key)


def reserve(filename: str, size: int) -> None:
    """The file exists with at least `size` bytes of real blocks (OSError when there is no
    room), so its first mapping never touches a page the file system cannot back."""
    descriptor = os.open(filename, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(descriptor, 0, max(size, os.fstat(descriptor).st_size))
    except OSError:
        if os.fstat(descriptor).st_size == 0:  # made just now: an empty file is no metrics file
            os.unlink(filename)
        raise
    finally:
        os.close(descriptor)


def install() -> None:
    """Make prometheus-client's multiprocess values use the reserving files."""
    values.MmapedDict = ReservedMmapedDict  # type: ignore[misc]

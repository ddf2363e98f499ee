"""Process-wide allocator setting for processes that handle sensor-sized messages."""

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc mallopt parameters


def reuse_large_allocations() -> None:
    """Keep freed multi-megabyte buffers in the heap instead of returning them to the kernel (glibc).

    Every image and cloud is a few fresh megabytes, copied more than once on its way in (DDS, CDR, the
    Python message): by default each buffer is mmap'ed and unmapped again, and the page faults of zeroing
    new pages cost more than copying the data (measured in eval: writing the inputs to output.mcap took
    24 ms per frame instead of 7). Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL('libc.so.6')
    except OSError:
        return
    libc.mallopt(M_MMAP_THRESHOLD, 256 * 1024 * 1024)
    libc.mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024)

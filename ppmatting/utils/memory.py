"""How much memory this process may plan to use, and sizes in messages.

Large inputs are refused before anything big is allocated (an image whose header claims more
pixels than fit, a classical solve over too many unknown pixels): the estimate is compared with a
share of the memory the machine has available now.
"""
GIB = 1024 ** 3
# share of MemAvailable one allocation plan may use when the caller sets no budget
MEMORY_SHARE = 0.7


def available_memory_bytes():
    """MemAvailable from /proc/meminfo (Linux), else 8 GiB."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 8 * GIB


def default_budget_bytes():
    """:data:`MEMORY_SHARE` of the available memory."""
    return int(MEMORY_SHARE * available_memory_bytes())


def format_bytes(n_bytes):
    """``1.5 GiB`` from 0.1 GiB up, else ``120 MiB``."""
    return f"{n_bytes / GIB:.1f} GiB" if n_bytes >= GIB / 10 else \
        f"{n_bytes / 1024 ** 2:.0f} MiB"

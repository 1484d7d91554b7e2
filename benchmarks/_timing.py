"""Timing shared by the benchmarks (``python benchmarks/bench_*.py`` finds it beside them)."""
import time


def best_time(function, repeat):
    """(the fastest wall-clock seconds of ``repeat`` calls of ``function``, the last call's value)."""
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value

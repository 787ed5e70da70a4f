"""Percentiles, medians and per-100 ms rates of what a run recorded."""

import math
import statistics
from collections.abc import Sequence

BIN_S = 0.1


def percentile(values: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile of values, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values that exist, or None."""
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def per_bin(times: Sequence[float], start: float, end: float) -> list[int]:
    """How many of times fall in each BIN_S-wide bin from start to end."""
    counts = [0] * max(1, math.ceil((end - start) / BIN_S))
    for moment in times:
        index = int((moment - start) / BIN_S)
        if 0 <= index < len(counts):
            counts[index] += 1
    return counts


def recovery_s(served_end_times: Sequence[float], steady: tuple[float, float], resume_at: float):
    """Seconds after resume_at until a 100 ms bin serves half the steady rate again.

    The steady rate is the median bin between the two moments of steady (before the stall).
    None when it never recovers in the recorded window.
    """
    baseline = median(per_bin(served_end_times, *steady))
    after = per_bin(served_end_times, resume_at, max(served_end_times, default=resume_at))
    for index, served in enumerate(after):
        if baseline and served >= baseline / 2:
            return round((index + 1) * BIN_S, 3)
    return None

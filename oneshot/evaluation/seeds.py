"""Numbers over seeds: the mean with a Student-t 95% interval, and paired differences.

A comparison of training recipes (losses, miners, ...) repeats each one with a few seeds. With
three seeds the normal approximation of :func:`oneshot.evaluation.episodes.mean_ci95` (1.96
standard errors) is far too narrow: the t quantile with 2 degrees of freedom is 4.30. Runs that
share a seed also share their batches and their evaluation episodes, so the difference of two
recipes is best judged seed by seed (:func:`paired_difference`): it removes the part of the
spread that both recipes share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class SeedSummary:
    """Mean of one number over seeds and the half-width of its 95% t interval.

    Attributes:
        mean: the mean over seeds.
        ci95: half-width of the 95% Student-t interval of the mean; NaN with one seed.
        values: the per-seed values, in seed order.
    """

    mean: float
    ci95: float
    values: tuple[float, ...]

    @property
    def seeds(self) -> int:
        return len(self.values)

    def excludes_zero(self) -> bool:
        """True when the interval lies entirely on one side of 0 (for a difference)."""
        return not math.isnan(self.ci95) and abs(self.mean) > self.ci95

    def format(self, scale: float = 1.0, digits: int = 1) -> str:
        """``"85.1 ± 0.4"`` (``scale`` 100 for percent); the value alone with one seed."""
        if math.isnan(self.ci95):
            return f"{scale * self.mean:.{digits}f}"
        return f"{scale * self.mean:.{digits}f} ± {scale * self.ci95:.{digits}f}"


def seed_summary(values: Sequence[float]) -> SeedSummary:
    """Mean and 95% t interval of per-seed ``values`` (at least one, all finite)."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0 or not np.all(np.isfinite(array)):
        raise ValueError(
            "Invalid value for argument `values`. Expected one or more finite numbers (one per "
            f"seed). Received: values={list(values)!r}"
        )
    if array.size == 1:
        return SeedSummary(float(array[0]), float("nan"), (float(array[0]),))
    sem = array.std(ddof=1) / math.sqrt(array.size)
    half = float(stats.t.ppf(0.975, array.size - 1) * sem)
    return SeedSummary(float(array.mean()), half, tuple(float(v) for v in array))


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> SeedSummary:
    """Summary of ``values - baseline`` seed by seed (both in the same seed order)."""
    if len(values) != len(baseline):
        raise ValueError(
            "Invalid value for argument `baseline`. Expected one value per seed of `values` "
            f"({len(values)}). Received: {len(baseline)} values."
        )
    return seed_summary(np.subtract(values, baseline))

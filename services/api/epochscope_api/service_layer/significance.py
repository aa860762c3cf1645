"""Is a change between two paired measurements real: the exact McNemar test on pass/fail, a paired bootstrap
interval on mean scores, and the sentence that says it. Pure functions; the bootstrap is seeded, so one
comparison always reads the same."""

import math
from dataclasses import dataclass

import numpy as np

SIGNIFICANCE_LEVEL = 0.05
CONFIDENCE = 0.95
_RESAMPLES_PER_CHUNK = 1000


def mcnemar_exact(fixes: int, regressions: int) -> float:
    """Two-sided exact McNemar p-value: under no change, each discordant pair is a fix or a regression with
    probability 1/2, so the smaller count is binomial(n, 1/2); p = 2 * P(X <= min), capped at 1."""
    discordant = fixes + regressions
    if discordant == 0:
        return 1.0
    tail = sum(math.comb(discordant, k) for k in range(min(fixes, regressions) + 1))
    return min(1.0, 2 * tail / 2**discordant)


def wilson_lower_bound(passed: int, graded: int) -> float:
    """The low end of the Wilson score interval (95%) of a pass rate: 1 pass of 1 reads about 0.21, 9 of 10 about
    0.60, so a rate on few verdicts does not outrank a slightly lower one on many."""
    if graded == 0:
        return 0.0
    z = 1.959963984540054
    rate = passed / graded
    centre = rate + z * z / (2 * graded)
    spread = z * math.sqrt(rate * (1 - rate) / graded + z * z / (4 * graded * graded))
    return (centre - spread) / (1 + z * z / graded)


@dataclass(frozen=True)
class PairedInterval:
    """Percentile intervals, from the same resamples of the samples, of each side's mean and of after - before."""

    before: tuple[float, float]
    after: tuple[float, float]
    difference: tuple[float, float]


def paired_bootstrap(before: list[float], after: list[float], resamples: int, seed: int) -> PairedInterval | None:
    """Resample the paired samples (a sample keeps both its scores) `resamples` times; None without a sample."""
    if not before:
        return None
    pairs = np.array([before, after], dtype=float)
    rng = np.random.default_rng(seed)
    chunks = []
    for start in range(0, resamples, _RESAMPLES_PER_CHUNK):  # bounded memory, whatever the resample count
        picks = rng.integers(0, len(before), size=(min(_RESAMPLES_PER_CHUNK, resamples - start), len(before)))
        chunks.append(pairs[:, picks].mean(axis=2))
    means = np.concatenate(chunks, axis=1)
    tails = [(1 - CONFIDENCE) / 2 * 100, (1 + CONFIDENCE) / 2 * 100]

    def interval(values: np.ndarray) -> tuple[float, float]:
        low, high = np.percentile(values, tails)
        return float(low), float(high)

    return PairedInterval(interval(means[0]), interval(means[1]), interval(means[1] - means[0]))


def change_sentence(before: str, after: str, fixes: int, regressions: int, p_value: float) -> str:
    """E.g. "round 4 vs round 2: +3 passes, -1, p = 0.62: not significant at this sample size"."""
    verdict = (
        f"significant at the {SIGNIFICANCE_LEVEL:.0%} level"
        if p_value < SIGNIFICANCE_LEVEL
        else "not significant at this sample size"
    )
    return f"{after} vs {before}: +{fixes} passes, -{regressions}, p = {p_value:.2g}: {verdict}"

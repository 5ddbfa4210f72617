"""Numerical kernels behind :mod:`fskit.drift` (private).

Each function works on plain numpy arrays: numerical samples arrive **sorted, without NaN or
null**, one array per side (``ref`` = reference, ``cur`` = current). The heavy parts are numpy
calls that release the GIL, so :mod:`fskit.drift` runs columns in threads. scipy is imported
lazily (``import scipy.stats`` costs ~0.7 s), only when a p-value is needed.

K-S follows ``scipy.stats.ks_2samp(ref, cur)`` with its defaults (two-sided, ``method="auto"``):

* ``max(n_ref, n_cur) <= 10_000``: scipy's own exact computation is used (it is cheap at that
  size, and delegating keeps the p-value identical to scipy's, fallbacks included);
* otherwise: the statistic is computed here from one linear merge of the two sorted samples,
  and the p-value is scipy's asymptotic one, ``kstwo.sf(D, round(n*m / (n + m)))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BLOCK",
    "EXACT_KS_MAX_N",
    "KSResult",
    "chi2_homogeneity",
    "counts_psi",
    "ecdf_at",
    "ks_2samp_sorted",
    "ks_statistic",
    "numerical_psi",
    "psi",
    "severity",
    "wasserstein",
]

#: ``scipy.stats.ks_2samp(method="auto")`` is exact up to this sample size (``MAX_AUTO_N``).
EXACT_KS_MAX_N = 10_000

#: Proportions below this are floored before the PSI logarithm (as Evidently does).
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class KSResult:
    """Two-sample K-S result: statistic ``D``, two-sided p-value, and where ``D`` is reached."""

    statistic: float
    p_value: float
    location: float
    wasserstein: float


def ecdf_at(sorted_values: np.ndarray, x: np.ndarray | float) -> np.ndarray:
    """The right-continuous ECDF of ``sorted_values`` evaluated at ``x`` (share of values <= x)."""
    return np.searchsorted(sorted_values, x, side="right") / sorted_values.shape[0]


#: Values taken from each sample per block of the merge: small enough that a block's work
#: arrays stay in the CPU cache, large enough that the Python loop costs nothing.
BLOCK = 1 << 16


#: One sample this many times smaller than the other (and the larger beyond 2 blocks) switches
#: to :func:`_ks_sparse`, whose cost does not grow with the larger sample.
SPARSE_RATIO = 16


def ks_statistic(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, float]:
    """Two-sided K-S statistic ``D``, where it is reached, and the Wasserstein-1 distance.

    ``ref`` and ``cur`` are sorted, NaN-free, non-empty. ``D`` is bit-identical to
    ``scipy.stats.ks_2samp``'s statistic; ``W1`` agrees with ``scipy.stats.wasserstein_distance``
    to rounding (about 1e-12 relative).
    """
    n, m = ref.shape[0], cur.shape[0]
    small, large = min(n, m), max(n, m)
    if (
        small * SPARSE_RATIO <= large
        and large > 2 * BLOCK
        and np.isfinite(ref[[0, -1]]).all()
        and np.isfinite(cur[[0, -1]]).all()
    ):
        return _ks_sparse(ref, cur)
    return _ks_merge(ref, cur)


def _extremes(
    c_ref: np.ndarray, c_cur: np.ndarray, locations: np.ndarray, n: int, m: int
) -> tuple[float, float, float]:
    """``D`` and its location from candidate points given by their exact counts."""
    ints = c_ref * m - c_cur * n  # n * m * (F_ref - F_cur), exact
    picked = []
    for want_hi in (True, False):
        idx = np.flatnonzero(ints == (ints.max() if want_hi else ints.min()))
        floats = c_ref[idx] / n - c_cur[idx] / m  # scipy's expression; keep its extreme float
        j = int(np.argmax(floats) if want_hi else np.argmin(floats))
        picked.append((float(floats[j]), float(locations[idx[j]])))
    (max_s, hi_loc), (lo, lo_loc) = picked
    min_s = float(np.clip(-lo, 0, 1))
    return (min_s, lo_loc, 0.0) if min_s > max_s else (max_s, hi_loc, 0.0)


def _ks_sparse(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, float]:
    """K-S and W1 when one sample is much smaller: O(small * log(large)), no merge.

    Between two consecutive distinct values of the small sample its ECDF is constant, so
    ``F_ref - F_cur`` is monotone there: its extremes sit right after each small value, just
    before the next one (the last large value below it) and at the end; their counts come from
    ``searchsorted`` on the large sample. ``W1`` integrates ``|F_large - g|`` on each such
    interval in closed form from prefix sums of the large sample (in ``longdouble`` to keep
    rounding near scipy's).
    """
    n, m = ref.shape[0], cur.shape[0]
    swap = n < m
    big, small = (cur, ref) if swap else (ref, cur)
    big_n, small_n = big.shape[0], small.shape[0]

    ends = np.flatnonzero(np.append(small[1:] != small[:-1], True))  # last of each run
    u = small[ends]
    s_right = ends + 1  # small values <= u_k
    s_before = np.concatenate(([0], s_right[:-1]))  # small values < u_k
    b_right = np.searchsorted(big, u, side="right")
    b_left = np.searchsorted(big, u, side="left")
    c_big = np.concatenate((b_right, b_left, [big_n]))
    c_small = np.concatenate((s_right, s_before, [small_n]))
    before = np.where(b_left > 0, big[np.maximum(b_left - 1, 0)], u)
    locations = np.concatenate((u, before, [max(big[-1], small[-1])]))
    c_ref, c_cur = (c_small, c_big) if swap else (c_big, c_small)
    d, location, _ = _extremes(c_ref, c_cur, locations, n, m)

    # W1 = integral of |F_big - G_small|, split where G_small steps: on [u_k, u_k+1) it is the
    # constant g_k, and F_big crosses g_k once, at big[floor(g_k * big_n)].
    s, t = u[:-1], u[1:]
    g_n = s_right[:-1] * big_n / small_n  # g * big_n
    r = (s_right[:-1] * big_n) // small_n
    cross = np.clip(np.where(r < big_n, big[np.minimum(r, big_n - 1)], t), s, t)
    x_le = np.searchsorted(big, cross, side="right")
    x_lt = np.searchsorted(big, cross, side="left")
    le_first = int(np.searchsorted(big, big[0], side="right"))
    lt_last = int(np.searchsorted(big, big[-1], side="left"))
    prefix = _prefix_sums(
        big, (b_right[:-1], x_lt, x_le, b_left[1:], [le_first, b_left[0], b_right[-1], lt_last])
    )
    center = big[big_n // 2]

    def area(s: Any, t: Any, le_s: Any, lt_t: Any) -> Any:
        """big_n * integral of F_big over [s, t): le_s = #big <= s, lt_t = #big < t."""
        return le_s * (t - s) + (lt_t - le_s) * (t - center) - (prefix(lt_t) - prefix(le_s))

    below = g_n * (cross - s) - area(s, cross, b_right[:-1], x_lt)  # F_big <= g here
    above = area(cross, t, x_le, b_left[1:]) - g_n * (t - cross)  # F_big > g here
    total = np.sum(below) + np.sum(above)
    if big[0] < u[0]:  # G = 0 before the first small value
        total += area(big[0], u[0], le_first, b_left[0])
    if big[-1] > u[-1]:  # G = 1 after the last one
        total += big_n * (big[-1] - u[-1]) - area(u[-1], big[-1], b_right[-1], lt_last)
    return d, location, float(total / big_n)


def _prefix_sums(values: np.ndarray, needed: Iterable[Any]) -> Any:
    """``P(i) = sum(values[:i] - center)`` at the indices in ``needed`` (center: the median).

    One ``reduceat`` pass sums the pieces between the needed indices in float64 (each piece is
    small, so rounding stays relative to the piece); the running total of the pieces is kept
    in ``longdouble``, so a difference of two prefix sums keeps its precision even when the
    prefix sums themselves are large.
    """
    size = values.shape[0]
    idx = np.unique(np.concatenate([np.asarray(i, dtype=np.int64).ravel() for i in needed]))
    starts = np.unique(np.concatenate(([0], idx[idx < size])))
    pieces = np.add.reduceat(values - values[size // 2], starts)
    running = np.zeros(starts.shape[0] + 1, dtype=np.longdouble)
    np.cumsum(pieces.astype(np.longdouble), out=running[1:])
    bounds = np.append(starts, size)  # running[k] = sum of values before bounds[k]

    def prefix(at: Any) -> Any:
        return running[np.searchsorted(bounds, at)]

    return prefix


def _ks_merge(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, float]:
    """K-S and W1 from one merge of the two sorted samples (see :func:`ks_statistic`).

    Both come from one merge of the two sorted samples, done block by block: cut points taken
    every :data:`BLOCK` values of either sample split both samples so that block ``k`` holds
    the values in ``[cut_k, cut_k+1)`` of each; a block is merged with a stable argsort (on ties
    the ``ref`` values come first). Each block's work arrays stay in the CPU cache, so the merge
    reads each sample once from memory and two threads do not fight over memory bandwidth.

    After each merged value, with ``c_ref``/``c_cur`` the counts at or below it, the integer
    ``c_ref * m - c_cur * n`` is ``n * m * (F_ref - F_cur)`` exactly. Then

    * ``D = max |F_ref - F_cur|`` over the last value of each run of equal values (inside a run
      the counts are partial); the maximum is found on the exact integers, then evaluated as
      ``c_ref / n - c_cur / m`` — scipy's own float expression — so ``D`` is bit-identical to
      ``scipy.stats.ks_2samp``'s statistic;
    * ``W1 = sum |F_ref - F_cur| * (next value - value)`` (ties add zero), as
      ``scipy.stats.wasserstein_distance`` computes it.
    """
    n, m = ref.shape[0], cur.shape[0]
    cuts = np.unique(np.concatenate((ref[BLOCK::BLOCK], cur[BLOCK::BLOCK])))
    r_at = np.concatenate(([0], np.searchsorted(ref, cuts, side="left"), [n])).tolist()
    c_at = np.concatenate(([0], np.searchsorted(cur, cuts, side="left"), [m])).tolist()

    hi_int, hi_float, hi_loc = None, -np.inf, np.nan  # largest F_ref - F_cur
    lo_int, lo_float, lo_loc = None, np.inf, np.nan  # smallest F_ref - F_cur
    w_scaled = 0.0  # n * m * W1
    prev_diff = prev_value = None
    big = np.iinfo(np.int64)
    for r0, r1, c0, c1 in zip(r_at[:-1], r_at[1:], c_at[:-1], c_at[1:], strict=True):
        if r0 == r1 and c0 == c1:
            continue
        both = np.concatenate((ref[r0:r1], cur[c0:c1]))
        order = np.argsort(both, kind="stable")
        merged = both[order]
        diff = np.less(order, r1 - r0).astype(np.int64)  # +m per reference value, -n per current
        diff *= n + m
        diff -= n
        np.cumsum(diff, out=diff)
        diff += r0 * m - c0 * n  # n * m * (F_ref - F_cur) after each merged value
        with np.errstate(invalid="ignore"):  # inf - inf when a sample holds infinities
            if prev_value is not None:
                w_scaled += abs(prev_diff) * (float(merged[0]) - prev_value)
            # Not np.dot: BLAS threads would spin against the column threads.
            gaps = np.diff(merged)
            gaps *= np.abs(diff[:-1])
            w_scaled += float(gaps.sum())
        prev_diff, prev_value = int(diff[-1]), float(merged[-1])

        # A block ends a run of equal values: the next block's values are all larger.
        last = np.empty(merged.shape[0], dtype=bool)
        np.not_equal(merged[:-1], merged[1:], out=last[:-1])
        last[-1] = True
        ties = not last.all()
        block_hi = int(np.max(diff, where=last, initial=big.min) if ties else diff.max())
        block_lo = int(np.min(diff, where=last, initial=big.max) if ties else diff.min())
        for want_hi in (True, False):
            target = block_hi if want_hi else block_lo
            best = hi_int if want_hi else lo_int
            if best is not None and (target < best if want_hi else target > best):
                continue
            # Several positions can share the exact value; scipy keeps the largest float.
            idx = np.flatnonzero((diff == target) & last)
            taken = r0 + c0 + idx + 1
            c_ref = (diff[idx] + taken * n) // (n + m)
            floats = c_ref / n - (taken - c_ref) / m
            j = int(np.argmax(floats) if want_hi else np.argmin(floats))
            value, loc = float(floats[j]), float(merged[idx[j]])
            if want_hi and (best is None or target > best or value > hi_float):
                hi_int, hi_float, hi_loc = target, value, loc
            if not want_hi and (best is None or target < best or value < lo_float):
                lo_int, lo_float, lo_loc = target, value, loc

    max_s = hi_float
    min_s = float(np.clip(-lo_float, 0, 1))
    if min_s > max_s:
        return min_s, lo_loc, w_scaled / n / m
    return max_s, hi_loc, w_scaled / n / m


def wasserstein(ref: np.ndarray, cur: np.ndarray) -> float:
    """Wasserstein-1 distance between two sorted samples (``scipy.stats.wasserstein_distance``)."""
    return ks_statistic(ref, cur)[2]


def ks_2samp_sorted(ref: np.ndarray, cur: np.ndarray) -> KSResult:
    """``scipy.stats.ks_2samp(ref, cur)`` on sorted, NaN-free samples, plus Wasserstein-1.

    Requires ``len(ref) >= 1`` and ``len(cur) >= 1``.
    """
    n, m = ref.shape[0], cur.shape[0]
    d, location, w1 = ks_statistic(ref, cur)
    if max(n, m) <= EXACT_KS_MAX_N:
        from scipy import stats

        res = stats.ks_2samp(ref, cur)
        return KSResult(float(res.statistic), float(res.pvalue), float(res.statistic_location), w1)
    from scipy import stats

    big, small = (float(n), float(m)) if n >= m else (float(m), float(n))
    en = big * small / (big + small)
    p = float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return KSResult(d, p, location, w1)


def psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over matching bins or categories.

    Empty bins are floored at :data:`PSI_FLOOR` so that a new or vanished bin counts heavily
    without making the index infinite.
    """
    r = np.maximum(ref_share, PSI_FLOOR)
    c = np.maximum(cur_share, PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def counts_psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """PSI from counts per category (both arrays aligned on the same categories)."""
    return psi(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())


def numerical_psi(ref: np.ndarray, cur: np.ndarray, bins: int) -> float:
    """PSI of a numerical feature on ``bins`` quantile bins of the (sorted) reference.

    Bin edges are the reference's ``i / bins`` quantiles (``numpy.quantile(...,
    method="inverted_cdf")``), bins are closed on the right: ``(-inf, q1], (q1, q2], ...``.
    """
    n = ref.shape[0]
    inner = ref[(np.arange(1, bins) * n + bins - 1) // bins - 1]
    edges = np.unique(inner)
    ref_counts = np.diff(np.searchsorted(ref, edges, side="right"), prepend=0, append=n)
    cur_counts = np.diff(np.searchsorted(cur, edges, side="right"), prepend=0, append=cur.shape[0])
    return counts_psi(ref_counts, cur_counts)


def chi2_homogeneity(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Pearson chi-square test that two samples share one categorical distribution.

    The 2 x K contingency table of counts (categories seen in either sample), no continuity
    correction: the same as ``scipy.stats.chi2_contingency(table, correction=False)``.
    Categories new in ``cur`` are simply columns with a zero reference count.
    """
    table = np.vstack((ref_counts, cur_counts)).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    k = table.shape[1]
    if k < 2:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    from scipy import special

    return stat, float(special.chdtrc(k - 1, stat))


def severity(score: float, threshold: float, *, p_value: bool) -> float:
    """The drift score relative to its threshold, so that ``>= 1`` reads as "drifted".

    For a p-value ``log(p) / log(alpha)``; for a distance ``d / threshold``.
    """
    if math.isnan(score):
        return math.nan
    if p_value:
        return math.log(max(score, 1e-300)) / math.log(threshold)
    return score / threshold

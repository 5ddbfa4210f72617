"""Benchmark: a whole drift report vs a bare ``scipy.stats.ks_2samp`` loop on the same columns.

50 numerical features, 1M reference rows vs 1M current rows (half of the features shifted),
seeded numpy data. The fskit time is ``fskit.drift.compare`` end to end — profiling, K-S
statistic and p-value, Wasserstein, PSI, quality checks and chart aggregates, no chart rendered.
The floor is ``scipy.stats.ks_2samp`` looped over the same columns (statistic and p-value only).
Both wall and CPU time are printed: on a shared machine the wall time of a two-thread run
depends on what else is running, the CPU time much less.

    .venv/bin/python benchmarks/drift.py            # the full size (about a minute, mostly scipy)
    .venv/bin/python benchmarks/drift.py --small    # 10 features x 100k rows, a quick check
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc

import numpy as np
import polars as pl


def make_data(n_features: int, n_rows: int, seed: int = 42) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    ref, cur = {}, {}
    for i in range(n_features):
        name = f"f{i:02d}"
        ref[name] = rng.normal(0.0, 1.0, n_rows)
        shift = 0.25 if i % 2 else 0.0  # every other feature drifts
        cur[name] = rng.normal(shift, 1.0, n_rows)
    return pl.DataFrame(ref), pl.DataFrame(cur)


def time_fskit(ref: pl.DataFrame, cur: pl.DataFrame, repeat: int) -> tuple[float, float, object]:
    from fskit import drift

    best, best_cpu, report = float("inf"), float("inf"), None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        report = drift.compare(ref, cur)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best, best_cpu, report


def time_scipy(ref: pl.DataFrame, cur: pl.DataFrame) -> tuple[float, float, dict[str, tuple]]:
    from scipy import stats

    start, start_cpu = time.perf_counter(), time.process_time()
    out = {}
    for name in ref.columns:
        res = stats.ks_2samp(ref[name].to_numpy(), cur[name].to_numpy())
        out[name] = (float(res.statistic), float(res.pvalue))
    return time.perf_counter() - start, time.process_time() - start_cpu, out


def rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="10 features x 100k rows")
    parser.add_argument("--features", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="fskit runs (best is kept)")
    args = parser.parse_args(argv)
    n_features = args.features or (10 if args.small else 50)
    n_rows = args.rows or (100_000 if args.small else 1_000_000)

    import scipy.stats  # noqa: F401  (import cost is not part of either timing)

    import fskit.drift  # noqa: F401

    ref, cur = make_data(n_features, n_rows)
    print(f"{n_features} numerical features, {n_rows:,} reference rows vs {n_rows:,} current rows")
    rss_data = rss_mb()

    tracemalloc.start()
    t_fskit, cpu_fskit, report = time_fskit(ref, cur, 1)  # first run: memory high-water marks
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss_fskit = rss_mb()
    if args.repeat > 1:
        t_more, cpu_more, report = time_fskit(ref, cur, args.repeat - 1)
        t_fskit, cpu_fskit = min(t_fskit, t_more), min(cpu_fskit, cpu_more)
    t_scipy, cpu_scipy, floor = time_scipy(ref, cur)

    # The report must agree with the floor it is timed against.
    feats = report.features
    for name, (stat, p) in floor.items():
        row = feats.row(by_predicate=pl.col("feature") == name, named=True)
        assert row["statistic"] == stat, (name, row["statistic"], stat)
        assert abs(row["p_value"] - p) <= 1e-9 * max(p, 1e-300), (name, row["p_value"], p)

    data_mb = (ref.estimated_size() + cur.estimated_size()) / 2**20
    print()
    print(f"{'':<46}{'wall (s)':>10}{'CPU (s)':>10}")
    fskit_label = f"fskit drift.compare, whole report (best of {args.repeat})"
    print(f"{fskit_label:<46}{t_fskit:>10.2f}{cpu_fskit:>10.2f}")
    print(f"{'scipy.stats.ks_2samp loop, K-S only':<46}{t_scipy:>10.2f}{cpu_scipy:>10.2f}")
    print(f"{'ratio fskit / scipy':<46}{t_fskit / t_scipy:>10.2f}{cpu_fskit / cpu_scipy:>10.2f}")
    print()
    print(f"input data (both frames)           {data_mb:>7.0f} MB")
    print(f"peak RSS after making the data     {rss_data:>7.0f} MB")
    print(
        f"peak RSS after fskit's first run   {rss_fskit:>7.0f} MB  (+{rss_fskit - rss_data:.0f} MB)"
    )
    print(f"numpy/python traced peak (fskit)   {traced_peak / 2**20:>7.0f} MB  (tracemalloc)")
    print(
        f"drifted: {len(report.drifted_features)}/{report.n_tested} features "
        f"(expected {n_features // 2}: the shifted ones)"
    )
    target = t_fskit <= t_scipy and (args.small or t_fskit < 5.0)
    goal = "<= scipy loop" + ("" if args.small else ", < 5 s wall")
    print(f"target ({goal}): {'met' if target else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Batch scoring: precompute scores with the serving code path (the batch pattern)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fskit.serving._predictor import MAX_BATCH, Predictor

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["batch_score"]


def batch_score(
    store: FeatureStore | str | os.PathLike[str],
    model: str,
    entities: Any,
    *,
    version: int | None = None,
    path: str | os.PathLike[str] | None = None,
) -> pl.DataFrame:
    """Score ``entities`` now, as ``/predict`` would, and optionally write them for serving.

    ``entities`` is a polars DataFrame (or a dict of lists / list of dicts) with the model's
    join keys (and request fields). Returns the keys with ``score``, ``version`` and
    ``scored_at``; with ``path`` the frame is also written there as Parquet (atomically), the
    file a server started with ``batch_scores=path`` answers from.
    """
    from fskit.store import FeatureStore

    if not isinstance(store, FeatureStore):
        store = FeatureStore(store)
    predictor = Predictor(store, model)
    spec = predictor.pin(version)
    if isinstance(entities, pl.LazyFrame):
        entities = entities.collect()
    if not isinstance(entities, pl.DataFrame):
        entities = pl.DataFrame(entities)
    parts = []
    for start in range(0, max(entities.height, 1), MAX_BATCH):
        chunk = entities.slice(start, MAX_BATCH)
        if chunk.is_empty():
            break
        result = predictor.predict(
            chunk.to_dict(as_series=False), version=spec.version, route="batch"
        )
        parts.append(
            chunk.select(spec.join_keys).with_columns(
                pl.Series(
                    "score", [p["score"] for p in result.body["predictions"]], dtype=pl.Float64
                ),
            )
        )
    frame = (
        pl.concat(parts)
        if parts
        else pl.DataFrame(schema={**{k: pl.Int64 for k in spec.join_keys}, "score": pl.Float64})
    )
    frame = frame.with_columns(
        pl.lit(spec.version, dtype=pl.Int64).alias("version"),
        pl.lit(datetime.now(UTC), dtype=pl.Datetime("us", "UTC")).alias("scored_at"),
    )
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        frame.write_parquet(tmp)
        os.replace(tmp, target)
    return frame

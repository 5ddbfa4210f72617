"""fskit: a polars-based, notebook-first feature store and model-serving kit.

>>> import fskit as fk
>>> fk.Entity("user", join_keys=["user_id"])
Entity('user', join_keys=['user_id'])
"""

from importlib.metadata import PackageNotFoundError, version

# definitions
from fskit.definitions import (
    CSVSource,
    DataFrameSource,
    Entity,
    FeatureRef,
    FeatureService,
    FeatureView,
    Field,
    ParquetSource,
)

# errors
from fskit.errors import (
    DefinitionError,
    EntityFrameError,
    FeatureRefError,
    FskitError,
    MissingDependencyError,
    OnlineStoreError,
    RegistryError,
    SchemaError,
    StoreUnavailableError,
    VersionConflictError,
)

# models
from fskit.models import LoadedModel, ModelLoadError, ModelRegistry, ModelVersion, predict_batch

# registry and store
from fskit.registry import Plan
from fskit.store import FeatureStore

# training
from fskit.training import TimeSplit, TrainResult, train

# transformations
from fskit.transformations import Aggregation, OnDemandFeatureView, StreamFeatureView

try:
    __version__ = version("fskit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    # definitions
    "CSVSource",
    "DataFrameSource",
    "Entity",
    "FeatureRef",
    "FeatureService",
    "FeatureView",
    "Field",
    "ParquetSource",
    # registry and store
    "FeatureStore",
    "Plan",
    # training and models
    "LoadedModel",
    "ModelLoadError",
    "ModelRegistry",
    "ModelVersion",
    "TimeSplit",
    "TrainResult",
    "predict_batch",
    "train",
    # transformations
    "Aggregation",
    "OnDemandFeatureView",
    "StreamFeatureView",
    # errors
    "DefinitionError",
    "EntityFrameError",
    "FeatureRefError",
    "FskitError",
    "MissingDependencyError",
    "OnlineStoreError",
    "RegistryError",
    "SchemaError",
    "StoreUnavailableError",
    "VersionConflictError",
    "__version__",
    "serve",
]


def __getattr__(name: str):  # lazy submodules keep `import fskit` light
    import importlib

    if name == "serve":
        from fskit.serving import serve

        return serve

    if name in {
        "charts",
        "datasets",
        "drift",
        "materialization",
        "models",
        "online",
        "serving",
        "simulate",
        "skew",
        "stream",
        "training",
    }:
        return importlib.import_module(f"fskit.{name}")
    raise AttributeError(f"module 'fskit' has no attribute {name!r}")

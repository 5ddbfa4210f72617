"""The exceptions fskit raises.

Every error fskit raises on purpose derives from :class:`FskitError`, so a caller can catch
them all at once. Each message names the object, the field, the bad value and the fix::

    FskitError
    ├── DefinitionError       a definition is invalid (also a ValueError)
    │   └── SchemaError       the source's columns do not match the definition
    ├── RegistryError         the registry refuses an operation (also a ValueError)
    │   └── VersionConflictError  logic changed under an applied version: bump `version`
    ├── FeatureRefError       a feature reference is malformed or unknown (also a KeyError)
    ├── EntityFrameError      the entity frame is not usable for a join (also a ValueError)
    ├── OnlineStoreError      the online store cannot be read or written
    │   └── StoreUnavailableError  the backend is down or unreachable
    └── MissingDependencyError an optional package is not installed (also an ImportError)
"""

from __future__ import annotations

__all__ = [
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
]


class FskitError(Exception):
    """Base class of every error fskit raises on purpose."""


class DefinitionError(FskitError, ValueError):
    """A definition (entity, field, source, feature view...) is invalid."""


class SchemaError(DefinitionError):
    """A source's columns or dtypes do not match what the definition declares."""


class RegistryError(FskitError, ValueError):
    """The registry refuses an operation (duplicate names, unknown objects...)."""


class VersionConflictError(RegistryError):
    """An applied definition's logic changed without a new version."""


class FeatureRefError(FskitError, KeyError):
    """A feature reference such as ``"user_stats:total_purchases"`` is malformed or unknown."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class EntityFrameError(FskitError, ValueError):
    """The entity frame given for a join lacks a column or has the wrong types."""


class OnlineStoreError(FskitError):
    """The online store cannot be read or written."""


class StoreUnavailableError(OnlineStoreError):
    """The online store's backend is down or unreachable."""


class MissingDependencyError(FskitError, ImportError):
    """An optional package is needed for this feature; the message says which extra to install."""

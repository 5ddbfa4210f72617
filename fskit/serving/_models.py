"""Access to the model registry (:mod:`fskit.models`) and checks of model names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["check_model_name", "model_registry"]


def check_model_name(name: object) -> str:
    """Return ``name`` if it is a valid model name (it names files in the repo), else raise.

    The rule is the model registry's: a lowercase letter, then up to 63 lowercase letters,
    digits, ``_`` or ``-`` — so no path traversal.

    >>> check_model_name("fraud")
    'fraud'
    >>> check_model_name("../etc/passwd")
    Traceback (most recent call last):
    ...
    fskit.errors.DefinitionError: model name must match ...
    """
    from fskit.models import check_name

    return check_name(name)


def model_registry(store: FeatureStore) -> Any:
    """The repo's :class:`fskit.models.ModelRegistry`."""
    from fskit.models import ModelRegistry

    return ModelRegistry(store)

"""``Cockpit``: every panel in one set of tabs, wired together on one feature store.

The training-set builder feeds the train panel; a model registered there appears in the
deploy panel; the drift tab compares the deployed model's training reference with what the
server has logged. Each panel stays reachable as an attribute, for code and tests.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import polars as pl

import fskit as fk

from ._deploy import DeployPanel
from ._monitor import DriftPanel, SkewPanel
from ._registry import RegistryExplorer
from ._simulator import SimulatorPanel
from ._training import TrainingSetBuilder, TrainPanel

if TYPE_CHECKING:
    from fskit.store import FeatureStore

__all__ = ["Cockpit"]


class Cockpit(widgets.VBox):
    """The fskit cockpit: registry → training set → train → deploy → simulate → skew → drift.

    Parameters
    ----------
    store
        The feature store.
    entity_df
        The entity rows (keys, timestamp, label) training sets are built from; for the sample
        data ``fskit.datasets.fraud_entity_rows()``.
    features
        Features picked at first in the training-set builder.
    label, extra_columns, model_name
        Defaults of the train panel (e.g. ``"is_fraud"``, ``["amount"]``, ``"fraud"``).
    live
        Run the deploy panel's live readout thread.

    Attributes
    ----------
    registry, builder, trainer, deployer, simulator, skew, drift
        The panels.
    tabs : ipywidgets.Tab
    """

    def __init__(
        self,
        store: FeatureStore,
        entity_df: pl.DataFrame | None = None,
        *,
        features: Sequence[str] = (),
        label: str | None = None,
        extra_columns: Sequence[str] = (),
        model_name: str = "model",
        live: bool = True,
    ) -> None:
        self.store = store
        self.registry = RegistryExplorer(store)
        self.builder = TrainingSetBuilder(store, entity_df, features=features, label=label)
        self.trainer = TrainPanel(
            store, self.builder, label=label, extra_columns=extra_columns, model_name=model_name
        )
        example = entity_df.row(0, named=True) if entity_df is not None and entity_df.height else {}
        self.deployer = DeployPanel(store, example=example, live=live)
        self.simulator = SimulatorPanel(store, entity_df)
        keys = _entity_keys(store, entity_df)
        self.skew = SkewPanel(store, keys)
        self.drift = DriftPanel(self._reference, self._serving_log)
        panels: list[tuple[str, Any]] = [
            ("Registry", self.registry),
            ("Training set", self.builder),
            ("Train", self.trainer),
            ("Deploy", self.deployer),
            ("Simulate", self.simulator),
            ("Skew", self.skew),
            ("Drift", self.drift),
        ]
        self.tabs = widgets.Tab(
            children=[p for _, p in panels],
            titles=[f"{i} · {t}" for i, (t, _) in enumerate(panels, start=1)],
        )
        self.trainer.observe(self._on_register, "model_version")
        header = widgets.HTML(
            f"<b>fskit cockpit</b> on <code title='{html.escape(str(store.repo_path))}'>"
            f"{html.escape(store.repo_path.name)}</code> — work left to right: build a training "
            "set, train and register, deploy, try it."
        )
        super().__init__([header, self.tabs])
        self.add_class("fskit-cockpit")

    def close(self) -> None:
        """Close every panel (the deploy panel stops its server)."""
        self.deployer.close()
        super().close()

    def _on_register(self, change: dict[str, Any]) -> None:
        mv = change["new"]
        if mv is not None:
            self.deployer.refresh_models(prefer=mv.name)
            if self.deployer.server is None or not self.deployer.server.running:
                self.deployer.version.value = mv.version

    # the drift tab: the deployed model's training reference vs what its server logged
    def _model(self) -> tuple[str, int | None]:
        name = self.deployer.model.value
        if not name:
            raise fk.FskitError("no model yet: train, register and deploy one first")
        state = self.deployer.deployment
        return name, None if state is None else state.stable

    def _reference(self) -> Any:
        name, version = self._model()
        return self.store.models.get(name, version).reference_profile()

    def _serving_log(self) -> pl.DataFrame:
        name, _ = self._model()
        log = fk.serving.read_prediction_log(self.store, name)
        if log.is_empty():
            raise fk.FskitError(
                f"model {name!r} has served nothing yet (or the server has not flushed its "
                "log: it does every few seconds): send predictions from the Deploy tab first"
            )
        return log


def _entity_keys(store: FeatureStore, entity_df: pl.DataFrame | None) -> pl.DataFrame | None:
    if entity_df is None:
        return None
    keys = [k for e in store.list_entities() for k in e.join_keys if k in entity_df.columns]
    if not keys:
        return None
    return entity_df.select(keys).unique(maintain_order=True).head(1000)

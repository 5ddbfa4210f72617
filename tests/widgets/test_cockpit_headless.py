"""The cockpit end to end, as a new user clicks through it: build → train → register →
deploy → predict → canary → rollback → stop → drift of what was served."""

from __future__ import annotations

import ipywidgets as widgets
from fskit.widgets import Cockpit

import fskit as fk


def test_click_through_the_whole_cockpit(store, entity_rows, features):
    cockpit = Cockpit(
        store,
        entity_rows,
        features=features,
        label="is_fraud",
        extra_columns=["amount"],
        model_name="cockpit",
        live=False,
    )
    assert isinstance(cockpit.tabs, widgets.Tab)
    assert cockpit.tabs.titles == (
        "1 · Registry",
        "2 · Training set",
        "3 · Train",
        "4 · Deploy",
        "5 · Simulate",
        "6 · Skew",
        "7 · Drift",
    )
    assert set(cockpit.skew.entity_rows.columns) == {"user_id", "merchant_id"}
    b, t, d = cockpit.builder, cockpit.trainer, cockpit.deployer

    b.build_button.click()
    t.rounds.value, t.early_stopping.value = 30, 0
    t.train_button.click()
    t.register_button.click()
    assert (b.error, t.error) == ("", "")
    assert t.model_version.ref == "cockpit@v1"
    assert d.model.value == "cockpit" and d.version.value == 1  # the deploy tab followed

    d.deploy_button.click()
    assert d.error == "" and d.server.running
    # the try-it box is pre-filled from the first entity row
    first = entity_rows.row(0, named=True)
    assert d.inputs["user_id"].value == str(first["user_id"])
    d.predict_button.click()
    assert d.answer["predictions"][0]["version"] == 1

    # a second model version, then a canary of it, then a rollback
    t.max_depth.value = 3
    t.train_button.click()
    t.register_button.click()
    assert t.model_version.ref == "cockpit@v2"
    assert d.version.value == 2  # offered, the server keeps serving v1
    d.deploy_button.click()
    assert d.error == "" and (d.deployment.stable, d.deployment.canary) == (1, 2)
    d.share.value = 1.0
    d.predict_button.click()
    assert d.answer["predictions"][0]["route"] == "canary"
    d.rollback_button.click()
    assert fk.serving.status(store, "cockpit").canary is None
    d.predict_button.click()
    assert d.answer["predictions"][0]["version"] == 1

    # the drift tab compares the stable model's reference with what the server logged
    cockpit.drift.compare()
    assert "served nothing yet" in cockpit.drift.error  # the log is flushed every few seconds
    d.stop_button.click()  # a clean stop flushes it
    cockpit.drift.compare_button.click()
    assert cockpit.drift.error == ""
    assert set(cockpit.drift.result.features["feature"]) >= {"amount", "avg_purchase_value"}
    cockpit.close()

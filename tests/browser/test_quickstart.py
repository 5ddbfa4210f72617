"""The quickstart tutorial, run in a real JupyterLab in a real headless Chromium."""

from __future__ import annotations

from _lab import ARTIFACTS, errors_in_outputs, open_notebook, run_all


def test_quickstart_runs_in_jupyterlab(lab, page):
    open_notebook(page, lab.open_url("00_quickstart.ipynb"))
    run_all(page)
    assert errors_in_outputs(page) == []
    assert page.errors == []
    # the plan and the training set were rendered as HTML tables
    panel = page.locator("#jp-main-dock-panel .jp-NotebookPanel:visible")
    assert panel.locator("text=Plan").count() >= 1
    assert panel.locator(".jp-RenderedHTMLCommon table").count() >= 3
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "quickstart.png"))
    assert (lab.root / "feature_repo" / "registry.json").exists()

"""The cockpit notebook in a real JupyterLab and a real headless Chromium: run all cells, click
Build, Train (metrics and offline charts appear), Register, Deploy, Predict from the "try it"
box — then shut the kernel down and check that the model server went with it.

Screenshots go to ``test-artifacts/``; ``docs/cockpit.png`` (the README's picture) is written
when it is missing or when ``FSKIT_UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import urllib.request

from _lab import ARTIFACTS, ROOT, errors_in_outputs, open_notebook, run_all

NOTEBOOK = "09_cockpit.ipynb"
SCREENSHOT = ROOT / "docs" / "cockpit.png"
PANEL = "#jp-main-dock-panel .jp-NotebookPanel:visible"
KERNEL_ID = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _tab(cockpit, title: str) -> None:
    cockpit.locator(".lm-TabBar-tab", has_text=re.compile(rf"^\s*{re.escape(title)}\s*$")).click()


def _button(cockpit, name: str):
    exact = re.compile(rf"^\s*{re.escape(name)}\s*$")  # the icon is CSS, not text
    return cockpit.locator("button.jupyter-button").filter(has_text=exact, visible=True)


def _no_errors(page) -> None:
    assert errors_in_outputs(page) == []
    assert page.errors == []
    shown = page.locator(f"{PANEL} .fskit-panel pre:visible").all_inner_texts()
    assert not [t for t in shown if "failed" in t], shown  # a panel's error box


def test_cockpit_build_train_deploy_predict_in_jupyterlab(lab, page):
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    open_notebook(page, lab.open_url(NOTEBOOK))
    run_all(page)
    _no_errors(page)
    cockpit = page.locator(f"{PANEL} .fskit-cockpit")
    cockpit.wait_for(state="visible", timeout=30_000)

    # 1 · Registry: pick a feature, see its facts and its distribution chart (offline)
    registry = cockpit.locator(".fskit-panel").nth(0)
    registry.locator("select").nth(0).select_option(label="view · user_stats@v1")
    registry.locator("select").nth(1).select_option(label="avg_purchase_value")
    registry.locator("text=risk-team").first.wait_for(timeout=30_000)
    registry.locator(".vega-embed svg, .vega-embed canvas").first.wait_for(timeout=30_000)

    # 2 · Training set
    _tab(cockpit, "2 · Training set")
    _button(cockpit, "Build training set").click()
    cockpit.locator("text=/\\d[\\d,]* rows × \\d+ columns/").first.wait_for(timeout=30_000)

    # 3 · Train: a live progress bar, then metrics and two charts drawn offline
    _tab(cockpit, "3 · Train")
    _button(cockpit, "Train").click()
    cockpit.locator("text=/validation AUC 0\\.\\d+/").wait_for(timeout=60_000)
    train_panel = cockpit.locator(".fskit-panel:visible")
    charts = train_panel.locator(".vega-embed svg, .vega-embed canvas")
    charts.nth(1).wait_for(state="visible", timeout=30_000)
    assert charts.count() >= 2
    # every chart of the page drew (altair's inline HTML draws only the first one)
    assert page.locator(f"{PANEL} .fskit-chart").count() == 3
    assert page.locator(f"{PANEL} .fskit-chart :is(svg.marks, canvas.marks)").count() == 3
    assert train_panel.locator("text=TrainResult").count() >= 1
    _no_errors(page)
    train_panel.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "cockpit-train.png"))
    _button(cockpit, "Register").click()
    cockpit.locator("text=/Registered fraud@v\\d+/").wait_for(timeout=30_000)

    # 4 · Deploy: a real server; then a prediction from the "try it" box
    _tab(cockpit, "4 · Deploy")
    _button(cockpit, "Deploy").click()
    url = cockpit.locator(".fskit-server-url").inner_text(timeout=60_000)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    info = cockpit.locator("text=/pid \\d+/").first.inner_text()
    pid = int(re.search(r"pid (\d+)", info).group(1))
    assert _alive(pid)
    user = cockpit.get_by_label("user_id").filter(visible=True)
    assert user.input_value() != ""  # pre-filled from the first transaction
    user.fill("42")
    _button(cockpit, "Predict").click()
    answer = cockpit.locator(".fskit-answer")
    answer.wait_for(timeout=30_000)
    assert re.search(r"score 0\.\d{4} from v\d+ \(stable, live\)", answer.inner_text())
    # the live readout (polled once a second) counts the request
    cockpit.locator(".fskit-readout", has_text=re.compile(r"ready · 1 request, 1 row")).wait_for(
        timeout=30_000
    )
    _no_errors(page)
    cockpit.scroll_into_view_if_needed()
    cockpit.screenshot(path=str(ARTIFACTS / "cockpit-deploy.png"))
    if not SCREENSHOT.exists() or os.environ.get("FSKIT_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACTS / "cockpit-deploy.png", SCREENSHOT)

    # closing the notebook's kernel takes the server with it
    kernel = page.evaluate(KERNEL_ID)
    request = urllib.request.Request(
        f"{lab.url}/api/kernels/{kernel}",
        method="DELETE",
        headers={"Authorization": f"token {lab.token}"},
    )
    urllib.request.urlopen(request, timeout=30).close()
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the model server outlived its notebook's kernel"
    assert time.monotonic() - started < 120

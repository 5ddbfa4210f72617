"""Driving a notebook in JupyterLab from Playwright."""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const ctx = w && w.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""

PROMPTS = """() => Array.from(document.querySelectorAll(
  '#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt'
)).map(e => e.textContent.trim())"""


def open_notebook(page, url: str, timeout: float = 60) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=timeout * 1000)
    page.wait_for_function(KERNEL_IDLE, timeout=timeout * 1000)


def run_all(page, timeout: float = 120) -> None:
    """Run every cell and wait until each code cell shows an execution count."""
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        prompts = page.evaluate(PROMPTS)
        done = prompts and all(p.startswith("[") and p[1:-2].strip().isdigit() for p in prompts)
        if done and page.evaluate(KERNEL_IDLE):
            return
        time.sleep(0.25)
    raise TimeoutError(f"cells did not finish running: prompts {page.evaluate(PROMPTS)}")


def errors_in_outputs(page) -> list[str]:
    """Tracebacks and 'Error displaying widget' texts shown in the notebook."""
    texts = page.evaluate(
        """() => Array.from(document.querySelectorAll(
          '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"],'
          + ' .jp-OutputArea-output .jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'
        )).map(e => e.textContent.slice(0, 500))"""
    )
    widget_errors = page.locator("text=Error displaying widget").count()
    return texts + (["Error displaying widget"] * widget_errors)

"""What every fskit panel shares: a status line, a progress bar, an error box, and state.

A panel is a thin view. Each button runs exactly one call of fskit's public API through
:meth:`Panel._call`, which shows that the work is running, drives the progress bar from the
call's ``progress`` callback when it has one, and keeps the outcome where code can read it:
the value in a trait of the panel (``panel.result``...), a failure in ``panel.error`` (plain
words, also shown in red in the panel) and ``panel.exception`` (the exception itself). An
error is never swallowed: it is on screen and in the state.

Outputs are written by assigning ``Output.outputs`` (never ``with out:``), which renders the
same in JupyterLab, Voila and exported HTML, and can be asserted on in plain pytest.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any, TypeVar

import ipywidgets as widgets
import traitlets

from fskit.errors import FskitError

__all__ = ["Panel", "Result", "show"]

T = TypeVar("T")

#: Colours of the status line and the error box.
ERROR_COLOR = "#cf222e"
OK_COLOR = "#1a7f37"
MUTED_COLOR = "#57606a"


class Result(traitlets.Any):
    """A trait holding an outcome (a frame, a report, a model): every assignment notifies.

    ``traitlets.Any`` compares old and new values with ``==``, which polars frames answer
    elementwise (with a warning); outcomes are compared by identity instead.
    """

    def set(self, obj: traitlets.HasTraits, value: Any) -> None:
        new = self._validate(obj, value)
        old = obj._trait_values.get(self.name, self.default_value)
        obj._trait_values[self.name] = new
        if old is not new:
            obj._notify_trait(self.name, old, new)


def show(out: widgets.Output, *objects: Any) -> None:
    """Replace what ``out`` shows by ``objects``: strings as text, anything else displayed.

    Objects are formatted by IPython's display formatter (``_repr_html_``, altair's renderer,
    polars frames...), then set as the widget's ``outputs`` in one assignment: it renders the
    same in JupyterLab, Voila and exported HTML, and ``out.outputs`` holds it in pytest.
    """
    from IPython.core.interactiveshell import InteractiveShell

    fmt = InteractiveShell.instance().display_formatter.format
    outputs = []
    for obj in objects:
        if obj is None:
            continue
        if isinstance(obj, str):
            text = obj if obj.endswith("\n") else obj + "\n"
            outputs.append({"output_type": "stream", "name": "stdout", "text": text})
            continue
        data, metadata = fmt(obj)
        outputs.append({"output_type": "display_data", "data": data, "metadata": metadata})
    out.outputs = tuple(outputs)


def output_text(out: widgets.Output) -> str:
    """Everything ``out`` shows as text (stream text, then each output's text/plain or HTML)."""
    parts = []
    for o in out.outputs:
        if o["output_type"] == "stream":
            parts.append(o["text"])
        else:
            data = o.get("data", {})
            parts.append(str(data.get("text/html") or data.get("text/plain") or ""))
    return "\n".join(parts)


def plain_error(exc: BaseException) -> str:
    """An exception in plain words: fskit's own messages as they are, others with their type."""
    message = str(exc).strip() or exc.__class__.__name__
    if isinstance(exc, FskitError):
        return message
    return f"{exc.__class__.__name__}: {message}"


def hbox(*children: widgets.Widget) -> widgets.HBox:
    """A row; boxes in it keep their natural width (a row never squeezes a column)."""
    for child in children:
        if isinstance(child, widgets.Box) and child.layout.flex is None:
            child.layout.flex = "0 0 auto"
    return widgets.HBox(list(children), layout=widgets.Layout(align_items="center"))


def button(description: str = "", **kwargs: Any) -> widgets.Button:
    """A button as wide as its label (ipywidgets cuts longer labels at 148 px)."""
    kwargs.setdefault("layout", widgets.Layout(width="auto", min_width="90px"))
    return widgets.Button(description=description, **kwargs)


def heading(text: str) -> widgets.HTML:
    return widgets.HTML(f"<b>{html.escape(text)}</b>")


def note(text: str) -> widgets.HTML:
    return widgets.HTML(f"<span style='color:{MUTED_COLOR}'>{text}</span>")


class Panel(widgets.VBox):
    """Base class of the fskit panels: status line, progress bar, error box and outcome state.

    Attributes
    ----------
    error : str
        The last failure in plain words, ``""`` when the last action succeeded.
    exception : BaseException | None
        The exception behind :attr:`error` (with its traceback), for code and debugging.
    busy : bool
        True while an action runs.
    last_action : str
        What the last action was (``"Train"``...), for the status line and for tests.
    seconds : float
        How long the last action took.
    """

    error = traitlets.Unicode("", help="The last error in plain words; '' after a success.")
    busy = traitlets.Bool(False, help="True while an action runs.")
    last_action = traitlets.Unicode("", help="The name of the last action run.")

    def __init__(self, children: list[widgets.Widget], **kwargs: Any) -> None:
        self.exception: BaseException | None = None
        self.seconds = 0.0
        self.progress = widgets.IntProgress(
            value=0,
            min=0,
            max=1,
            bar_style="info",
            layout=widgets.Layout(width="320px", visibility="hidden"),
        )
        self.status = widgets.HTML("")
        self.error_box = widgets.HTML("")
        footer = hbox(self.progress, self.status)
        super().__init__([*children, footer, self.error_box], **kwargs)
        self.add_class("fskit-panel")

    # -- running one core call ----------------------------------------------------------------
    def _call(
        self,
        action: str,
        fn: Callable[..., T],
        *args: Any,
        steps: int | None = None,
        **kwargs: Any,
    ) -> T | None:
        """Run ``fn(*args, **kwargs)`` (one public fskit call) as the action ``action``.

        The status line says it is running and then how it went; with ``steps`` the progress
        bar counts up to it (drive it with :meth:`_step`), else it shows an indeterminate bar.
        A failure is kept in :attr:`error`/:attr:`exception`, shown in the error box, and
        ``None`` is returned.
        """
        self.error, self.exception = "", None
        self.error_box.value = ""
        self.last_action = action
        self.busy = True
        self._set_status(f"{html.escape(action)}…", MUTED_COLOR)
        self.progress.max = max(1, steps or 1)
        self.progress.value = 0 if steps else self.progress.max
        self.progress.bar_style = "info"
        self.progress.layout.visibility = "visible"
        started = time.perf_counter()
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:  # shown in the panel and kept in its state, never swallowed
            self.seconds = time.perf_counter() - started
            self._fail(action, exc)
            return None
        finally:
            self.busy = False
        self.seconds = time.perf_counter() - started
        self.progress.value = self.progress.max
        self.progress.bar_style = "success"
        self._set_status(f"{html.escape(action)}: done in {self.seconds:.1f} s", OK_COLOR)
        return value

    def _step(self, done: int, total: int | None = None, text: str = "") -> None:
        """Progress callback helper: move the bar to ``done`` (of ``total``)."""
        if total is not None and total != self.progress.max:
            self.progress.max = max(1, total)
        self.progress.value = min(done, self.progress.max)
        if text:
            self._set_status(html.escape(text), MUTED_COLOR)

    def _fail(self, action: str, exc: BaseException) -> None:
        self.exception = exc
        self.error = f"{action} failed: {plain_error(exc)}"
        self.progress.bar_style = "danger"
        self.progress.layout.visibility = "hidden"
        self._set_status(f"{html.escape(action)} failed", ERROR_COLOR)
        self.error_box.value = (
            f"<pre style='color:{ERROR_COLOR};white-space:pre-wrap;margin:4px 0'>"
            f"{html.escape(self.error)}</pre>"
        )

    def _refuse(self, action: str, message: str) -> None:
        """Report a precondition the user must fix (no core call was made)."""
        self._fail(action, _Refused(message))

    def _set_status(self, text_html: str, color: str) -> None:
        self.status.value = f"<span style='color:{color}'>{text_html}</span>"


class _Refused(FskitError):
    """The panel cannot run an action yet (the message says what to do first)."""

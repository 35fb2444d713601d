"""Small helpers shared by the widgets: coalesced redraws and one theme-aware stylesheet."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable

import ipywidgets as w


class Throttle:
    """Call ``fn`` at most every ``interval`` seconds while an event loop runs in this thread.

    A job emits an event per run and step; redrawing a table or a chart for each would flood
    the front end. Without a running loop (plain scripts, tests) every call redraws at once.
    """

    def __init__(self, fn: Callable[[], None], interval: float = 0.2):
        self.fn = fn
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None

    def __call__(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.fn()
            return
        if self._handle is None:
            self._handle = loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.fn()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def later(delay: float, fn: Callable[[], None]) -> asyncio.TimerHandle | None:
    """Call ``fn`` after ``delay`` seconds on the running loop; None (and no call) without one."""
    try:
        return asyncio.get_running_loop().call_later(delay, fn)
    except RuntimeError:
        return None


def error_html(message: str) -> str:
    if not message:
        return ""
    lines = html.escape(message, quote=False).replace("\n", "<br>")
    return f'<span class="wb-error">{lines}</span>'


def note_html(message: str) -> str:
    return f'<span class="wb-note">{html.escape(message, quote=False)}</span>' if message else ""


# Colours come from JupyterLab's theme (--jp-* variables; Voila's lab template has them too),
# so light and dark themes both stay legible; the fallbacks are the light theme's values.
CSS = """
<style>
.wb-error { color: var(--jp-error-color1, #b42318); font-size: 12px; }
.wb-note { color: var(--jp-ui-font-color1, #344054); font-size: 12px; }
.wb-help { color: var(--jp-ui-font-color2, #5d6778); font-size: 11px; margin: -2px 0 4px 0;
  line-height: 1.3; }
.wb-title { font-weight: 600; font-size: 15px; margin: 4px 0;
  color: var(--jp-ui-font-color0, #101828); }
.wb-overlay { position: fixed; top: 0; left: 0; right: 0; bottom: 0; z-index: 10000;
  background: rgba(16, 24, 40, 0.45); align-items: center; justify-content: center; }
.wb-dialog { background: var(--jp-layout-color1, #fff); color: var(--jp-ui-font-color1, #101828);
  border-radius: 10px; padding: 16px 20px; box-shadow: 0 20px 50px rgba(16, 24, 40, 0.35);
  width: 560px; max-height: 90vh; overflow: auto; }
.wb-table { border-collapse: collapse; font-size: 12px; color: var(--jp-content-font-color1, #101828); }
.wb-table th, .wb-table td { padding: 3px 8px; border-bottom: 1px solid var(--jp-border-color2, #eaecf0);
  text-align: left; vertical-align: top; }
.wb-table th { background: var(--jp-layout-color2, #f2f4f7); font-weight: 600;
  color: var(--jp-ui-font-color1, #101828); }
.wb-msg { border-left: 3px solid var(--jp-border-color1, #d0d5dd); margin: 6px 0; padding: 2px 8px;
  font-size: 12px; color: var(--jp-content-font-color1, #101828); }
.wb-msg pre { white-space: pre-wrap; word-break: break-word; margin: 2px 0; font-size: 12px;
  background: transparent; color: inherit; border: 0; padding: 0; }
.wb-role { font-weight: 600; text-transform: uppercase; font-size: 10px;
  color: var(--jp-ui-font-color1, #344054); }
.wb-msg-user { border-color: #2e90fa; }
.wb-msg-assistant { border-color: #12b76a; }
.wb-msg-tool { border-color: #f79009; background: var(--jp-layout-color2, #fff7e6); }
.wb-toolcall { font-family: var(--jp-code-font-family, monospace);
  background: var(--jp-layout-color3, #eaecf0); color: var(--jp-content-font-color0, #101828);
  padding: 2px 6px; margin: 2px 0; border-radius: 4px; word-break: break-word; }
.wb-usage { font-size: 11px; color: var(--jp-ui-font-color2, #5d6778); }
.wb-badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px;
  background: var(--jp-layout-color2, #eaecf0); color: var(--jp-ui-font-color1, #101828);
  margin-right: 4px; }
.wb-ok { background: rgba(18, 183, 106, 0.28); } .wb-bad { background: rgba(240, 68, 56, 0.28); }
.wb-side { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.wb-side > div { min-width: 0; }
.wb-flip-up { color: var(--jp-success-color1, #067647); font-weight: 600; }
.wb-flip-down { color: var(--jp-error-color1, #b42318); font-weight: 600; }
.wb-charts { display: flex; flex-wrap: wrap; gap: 8px; width: 100%; }
.wb-charts > .wb-bars { flex: 1 1 320px; min-width: 280px; }
.wb-charts > .wb-heat { flex: 2 1 480px; min-width: 320px; }
</style>
"""


def stylesheet() -> w.HTML:
    """The workbench widgets' CSS; every top-level widget carries one (duplicates are harmless)."""
    return w.HTML(CSS, layout=w.Layout(display="none"))

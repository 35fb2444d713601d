"""Small helpers shared by the widgets: coalesced redraws and one stylesheet."""

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


def error_html(message: str) -> str:
    return f'<span class="wb-error">{html.escape(message, quote=False)}</span>' if message else ""


def note_html(message: str) -> str:
    return f'<span class="wb-note">{html.escape(message, quote=False)}</span>' if message else ""


CSS = """
<style>
.wb-error { color: #b42318; font-size: 12px; }
.wb-note { color: #475467; font-size: 12px; }
.wb-help { color: #667085; font-size: 11px; margin: -2px 0 4px 0; line-height: 1.3; }
.wb-title { font-weight: 600; font-size: 15px; margin: 4px 0; }
.wb-overlay { position: fixed; top: 0; left: 0; right: 0; bottom: 0; z-index: 10000;
  background: rgba(16, 24, 40, 0.45); align-items: center; justify-content: center; }
.wb-dialog { background: var(--jp-layout-color0, #fff); border-radius: 10px; padding: 16px 20px;
  box-shadow: 0 20px 50px rgba(16, 24, 40, 0.35); width: 520px; max-height: 90vh;
  overflow: auto; }
.wb-table { border-collapse: collapse; font-size: 12px; }
.wb-table th, .wb-table td { padding: 3px 8px; border-bottom: 1px solid #eaecf0;
  text-align: left; vertical-align: top; }
.wb-table th { background: #f9fafb; font-weight: 600; }
.wb-msg { border-left: 3px solid #d0d5dd; margin: 6px 0; padding: 2px 8px; font-size: 12px; }
.wb-msg pre { white-space: pre-wrap; margin: 2px 0; font-size: 12px; }
.wb-role { font-weight: 600; text-transform: uppercase; font-size: 10px; color: #475467; }
.wb-msg-user { border-color: #2e90fa; }
.wb-msg-assistant { border-color: #12b76a; }
.wb-msg-tool { border-color: #f79009; background: #fffaeb; }
.wb-toolcall { font-family: monospace; background: #f2f4f7; padding: 2px 6px; margin: 2px 0;
  border-radius: 4px; }
.wb-badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px;
  background: #f2f4f7; margin-right: 4px; }
.wb-ok { background: #d1fadf; } .wb-bad { background: #fee4e2; }
</style>
"""


def stylesheet() -> w.HTML:
    """The workbench widgets' CSS; every top-level widget carries one (duplicates are harmless)."""
    return w.HTML(CSS, layout=w.Layout(display="none"))

"""Charts that draw wherever the notebook is opened: a Plotly figure kept whole in widget state.

```python
chart = Chart(go.Figure(go.Bar(x=["a", "b"], y=[1, 2])))
with chart.batch_update():       # as with Plotly's FigureWidget: drawn again when it ends
    chart.data[0].y = [2, 3]
chart.clicked                    # {"x": "b", "y": 3, "trace": 0, ...}: the last click on a point
```

Plotly's ``FigureWidget`` sends its figure to the page as a stream of edits, which a page
loaded later (a reload in JupyterLab, every Voila page) never receives: its charts came up
empty. A :class:`Chart` keeps the whole figure in one synced trait (``spec``), so every new
view draws it from the state it is given. Plotly's JavaScript comes from the ``plotly``
Python package (``package_data/plotly.min.js``): the first chart on a page asks the kernel
for it, and it arrives once per page as a binary message — never fetched from a CDN, and
never part of a widget's state (so it does not hold up the page's other widgets). The chart takes
its colours from JupyterLab's theme (the ``--jp-*`` CSS variables), follows theme changes,
and sizes itself to its container.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anywidget
import plotly
import plotly.graph_objects as go
import traitlets

_PLOTLY_MIN_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@functools.cache
def plotly_js() -> bytes:
    """Plotly's JavaScript (a UMD bundle of a few MB), read once."""
    return _PLOTLY_MIN_JS.read_bytes()


_ESM = """
const KEY = "__workbench_plotly__";

function loadPlotly(model) {
  // One copy per page, shared by every chart: asked of the kernel by the first chart drawn
  // and sent as a binary buffer, so it is never part of any widget's state.
  if (!globalThis[KEY]) {
    globalThis[KEY] = new Promise((resolve, reject) => {
      const onMessage = async (msg, buffers) => {
        if (!msg || msg.type !== "plotly-js") return;
        model.off("msg:custom", onMessage);
        // plotly.min.js is a UMD bundle: given a `module` it fills module.exports.
        const parts = ["const module = { exports: {} };\\n", buffers[0],
                       "\\nexport default module.exports;\\n"];
        const url = URL.createObjectURL(new Blob(parts, { type: "text/javascript" }));
        try {
          resolve((await import(url)).default);
        } catch (error) {
          reject(error);
        } finally {
          URL.revokeObjectURL(url);
        }
      };
      model.on("msg:custom", onMessage);
      model.send({ type: "plotly-js" });
    });
    globalThis[KEY].catch(() => { delete globalThis[KEY]; });
  }
  return globalThis[KEY];
}

function themed(el, layout) {
  // Colours from JupyterLab's theme variables (Voila's lab template defines them too).
  const css = getComputedStyle(el);
  const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  const font = v("--jp-ui-font-color1", "#1d2939");
  const grid = v("--jp-border-color2", "#e4e7ec");
  const line = v("--jp-border-color1", "#98a2b3");
  const family = v("--jp-ui-font-family", "system-ui, sans-serif");
  const out = { ...layout };
  out.paper_bgcolor = "rgba(0,0,0,0)";
  out.plot_bgcolor = "rgba(0,0,0,0)";
  out.font = { ...(layout.font || {}), color: font, family };
  if (out.title && typeof out.title === "object") {
    out.title = { ...out.title, font: { ...(out.title.font || {}), color: font } };
  }
  for (const key of ["xaxis", "yaxis", ...Object.keys(layout)]) {
    if (/^[xy]axis\\d*$/.test(key)) {
      out[key] = {
        ...(layout[key] || {}), color: font, gridcolor: grid, zerolinecolor: line,
        linecolor: line,
      };
    }
  }
  out.autosize = true;
  delete out.width;
  return out;
}

async function render({ model, el }) {
  const div = document.createElement("div");
  div.className = "wb-chart";
  div.style.width = "100%";
  el.style.width = "100%";
  el.appendChild(div);
  const Plotly = await loadPlotly(model);
  let drawn = false;
  const draw = () => {
    const spec = model.get("spec") || {};
    const layout = spec.layout || {};
    if (layout.height) div.style.height = layout.height + "px";
    Plotly.react(div, spec.data || [], themed(el, layout), {
      responsive: true, displaylogo: false, displayModeBar: false, ...(spec.config || {}),
    });
    if (!drawn) {
      drawn = true;
      div.on("plotly_click", (event) => {
        const p = (event.points || [])[0];
        if (!p) return;
        model.set("clicked", {
          x: p.x ?? null, y: p.y ?? null, trace: p.curveNumber ?? 0,
          point: p.pointNumber ?? null, customdata: p.customdata ?? null, at: Date.now(),
        });
        model.save_changes();
      });
    }
  };
  draw();
  model.on("change:spec", draw);
  let width = div.clientWidth;
  const resize = new ResizeObserver(() => {
    // A chart first drawn hidden (a closed tab) has no width: size it once it shows.
    if (div.clientWidth && div.clientWidth !== width) {
      width = div.clientWidth;
      Plotly.Plots.resize(div);
    }
  });
  resize.observe(el);
  const theme = new MutationObserver(draw);  // JupyterLab switches themes on <body>
  theme.observe(document.body, {
    attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"],
  });
  return () => {
    resize.disconnect();
    theme.disconnect();
    model.off("change:spec", draw);
    Plotly.purge(div);
  };
}

export default { render };
"""


class Chart(anywidget.AnyWidget):
    """A Plotly figure drawn in the page; ``figure`` is the :class:`plotly.graph_objects.Figure`."""

    _esm = _ESM
    _css = ".wb-chart .main-svg { overflow: visible; }"
    spec = traitlets.Dict(help="the figure as JSON: what every view draws").tag(sync=True)
    clicked = traitlets.Dict(help="the last point clicked: x, y, trace, customdata").tag(sync=True)

    def __init__(self, figure: go.Figure | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.figure = figure if figure is not None else go.Figure()
        self.figure.layout.template = "none"  # colours come from the page's theme
        self._held = 0
        self.on_msg(self._on_message)
        self.redraw()

    def _on_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "plotly-js":
            self.send({"type": "plotly-js"}, buffers=[plotly_js()])

    @property
    def data(self) -> tuple:
        """The figure's traces (``chart.figure.layout`` is its layout: ``chart.layout`` is the
        widget's, as for every ipywidget)."""
        return self.figure.data

    @contextmanager
    def batch_update(self) -> Iterator[None]:
        """Change the figure freely inside; it is sent once, when the block ends."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held:
                self.redraw()

    def redraw(self) -> None:
        """Send the figure to every view (plotly's encoder: numpy arrays, NaN as null)."""
        if not self._held:
            self.spec = json.loads(self.figure.to_json())

"""Table: a clickable, sortable table that only ever holds the rows on screen.

```python
table = Table(columns=[("task", "task"), ("reward", "reward")], key="key")
table.show([{"key": "a", "task": "a", "reward": 1.0}])   # a new page: sent whole
table.show([{"key": "a", "task": "a", "reward": 0.5}])   # same rows: only the changed one is sent
table.selected                                            # the key of the row clicked last
table.sort_by, table.descending                           # set by a click on a header
```

``rows`` is the page as the page shows it; :meth:`show` sends a new page whole and, when the
page keeps rows it had, sends only the rows that changed or arrived, and the new order when
it moved (a ``patch`` message), while keeping ``rows`` current in the kernel without
resending it — so a view opened later (a reload) still gets the page as it is now. A cell of a column named in
``shade`` is tinted from red (0) to green (1) by its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anywidget
import traitlets

_ESM = """
function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "wb-tablebox";
  el.appendChild(box);
  let rows = model.get("rows");
  const trs = new Map();

  const fill = (tr, row) => {
    const shade = model.get("shade");
    const columns = model.get("columns");
    tr.className = "wb-row" + (row._class ? " " + row._class : "");
    tr.classList.toggle("wb-selected", row.key === model.get("selected"));
    tr.replaceChildren();
    for (const [name] of columns) {
      const td = tr.insertCell();
      const value = row[name];
      td.textContent = value === null || value === undefined ? "" : String(value);
      const level = shade.includes(name) ? row["_" + name] : null;
      if (typeof level === "number" && isFinite(level)) {
        const hue = Math.round(120 * Math.max(0, Math.min(1, level)));
        td.style.background = `hsla(${hue}, 75%, 45%, 0.3)`;
      }
    }
  };

  const draw = () => {
    const columns = model.get("columns");
    const sortBy = model.get("sort_by");
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const [name, label] of columns) {
      const th = document.createElement("th");
      th.dataset.column = name;
      const arrow = name === sortBy ? (model.get("descending") ? " ▼" : " ▲") : "";
      th.textContent = label + arrow;
      if (model.get("sortable")) {
        th.classList.add("wb-sortable");
        th.addEventListener("click", () => {
          const descending = name === model.get("sort_by") ? !model.get("descending") : false;
          model.set("sort_by", name);
          model.set("descending", descending);
          model.save_changes();
        });
      }
      head.appendChild(th);
    }
    const body = table.createTBody();
    trs.clear();
    for (const row of rows) {
      const tr = body.insertRow();
      tr.dataset.key = row.key;
      fill(tr, row);
      tr.addEventListener("click", () => {
        model.set("selected", row.key);
        model.save_changes();
      });
      trs.set(row.key, tr);
    }
    if (!rows.length && model.get("empty")) {
      const td = body.insertRow().insertCell();
      td.colSpan = columns.length;
      td.className = "wb-empty";
      td.textContent = model.get("empty");
    }
    box.replaceChildren(table);
  };

  const onRows = () => { rows = model.get("rows"); draw(); };
  const onSelected = () => {
    const selected = model.get("selected");
    for (const [key, tr] of trs) tr.classList.toggle("wb-selected", key === selected);
  };
  const onMessage = (msg) => {
    if (!msg || msg.type !== "patch") return;
    if (msg.order) {  // rows came, went or moved: the new order, and only the new rows
      const known = new Map(rows.map((r) => [r.key, r]));
      for (const row of msg.rows) known.set(row.key, row);
      rows = msg.order.map((key) => known.get(key)).filter((r) => r);
      draw();
      return;
    }
    for (const row of msg.rows) {  // the same rows: changed ones redrawn in place
      const i = rows.findIndex((r) => r.key === row.key);
      if (i >= 0) rows[i] = row;
      const tr = trs.get(row.key);
      if (tr) fill(tr, row);
    }
  };
  model.on("change:rows", onRows);
  model.on("change:columns", draw);
  model.on("change:sort_by", draw);
  model.on("change:descending", draw);
  model.on("change:selected", onSelected);
  model.on("msg:custom", onMessage);
  draw();
  return () => {
    model.off("change:rows", onRows);
    model.off("change:columns", draw);
    model.off("change:sort_by", draw);
    model.off("change:descending", draw);
    model.off("change:selected", onSelected);
    model.off("msg:custom", onMessage);
  };
}
export default { render };
"""

_CSS = """
.wb-tablebox { max-height: 360px; overflow: auto; border: 1px solid var(--jp-border-color2, #eaecf0);
  border-radius: 6px; }
.wb-tablebox table { border-collapse: collapse; width: 100%; font-size: 12px;
  color: var(--jp-content-font-color1, #101828); }
.wb-tablebox th { position: sticky; top: 0; z-index: 1; text-align: left; padding: 4px 8px;
  background: var(--jp-layout-color2, #f2f4f7); color: var(--jp-ui-font-color1, #101828);
  white-space: nowrap; user-select: none; }
.wb-tablebox th.wb-sortable { cursor: pointer; }
.wb-tablebox td { padding: 3px 8px; border-top: 1px solid var(--jp-border-color2, #eaecf0);
  cursor: pointer; }
.wb-tablebox tr.wb-row:hover td { background-color: var(--jp-layout-color2, #eef4ff); }
.wb-tablebox tr.wb-selected td { box-shadow: inset 0 2px 0 var(--jp-brand-color1, #1570ef),
  inset 0 -2px 0 var(--jp-brand-color1, #1570ef); font-weight: 600; }
.wb-tablebox tr.wb-status-running td { font-style: italic; }
.wb-tablebox tr.wb-status-error td, .wb-tablebox tr.wb-status-timeout td {
  color: var(--jp-error-color1, #b42318); }
.wb-tablebox tr.wb-flip-up td:last-child { color: var(--jp-success-color1, #067647); font-weight: 600; }
.wb-tablebox tr.wb-flip-down td:last-child { color: var(--jp-error-color1, #b42318); font-weight: 600; }
.wb-tablebox td.wb-empty { cursor: default; color: var(--jp-ui-font-color1, #344054); }
"""


class Table(anywidget.AnyWidget):
    """Rows (dicts with a ``key``) in, ``selected`` (a key) and the sort column out."""

    _esm = _ESM
    _css = _CSS
    columns = traitlets.List(help="[name, label] pairs, in order").tag(sync=True)
    rows = traitlets.List(traitlets.Dict(), help="the rows on screen").tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    sortable = traitlets.Bool(False).tag(sync=True)
    sort_by = traitlets.Unicode("").tag(sync=True)
    descending = traitlets.Bool(False).tag(sync=True)
    shade = traitlets.List(traitlets.Unicode(), help="columns tinted by _<name> in [0, 1]").tag(
        sync=True
    )
    empty = traitlets.Unicode("", help="shown when there are no rows").tag(sync=True)

    def __init__(self, columns: Sequence[tuple[str, str]] | Sequence[str] = (), **kwargs: Any):
        pairs = [[c, c] if isinstance(c, str) else list(c) for c in columns]
        super().__init__(columns=pairs, **kwargs)

    def show(self, rows: list[dict[str, Any]]) -> int:
        """Put ``rows`` on screen; returns how many rows were sent to the page."""
        before = {r["key"]: r for r in self.rows}
        changed = [r for r in rows if before.get(r["key"]) != r]
        order = [r["key"] for r in rows]
        moved = order != [r["key"] for r in self.rows]
        if not changed and not moved:
            return 0
        if len(changed) == len(rows):  # nothing in common with the page shown: send it
            self.rows = rows
            return len(rows)
        # The page keeps some of its rows: send the changed and new ones (and the order, if
        # it changed), and keep `rows` current here without sending it again, so a page
        # opened later (a reload) still gets it whole.
        with self._lock_property(rows=rows):
            self.rows = rows
        self.send({"type": "patch", "order": order if moved else None, "rows": changed})
        return len(changed)

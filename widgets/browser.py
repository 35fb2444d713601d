"""Two small bridges to the browser: a file download, and the page's address (for sharing).

```python
download = Download()
download.save("traces.csv", b"...")     # the browser saves the file (works under Voila too)
address = Address(query="taskset=shop-basics&job=ab12")   # the page's URL shows this query
```
"""

from __future__ import annotations

from collections.abc import Callable

import anywidget
import traitlets

_DOWNLOAD_ESM = """
function render({ model, el }) {
  const onMessage = (msg, buffers) => {
    if (!msg || msg.type !== "download") return;
    const blob = new Blob(buffers, { type: msg.mime || "application/octet-stream" });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = msg.filename;
    el.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  };
  model.on("msg:custom", onMessage);
  return () => model.off("msg:custom", onMessage);
}
export default { render };
"""

MIME = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}


class Download(anywidget.AnyWidget):
    """Hands bytes to the browser as a file download (nothing is written on the server)."""

    _esm = _DOWNLOAD_ESM
    filename = traitlets.Unicode("", help="the last file handed over")
    size = traitlets.Int(0, help="its size in bytes")

    def save(self, filename: str, data: bytes) -> None:
        suffix = filename.rsplit(".", 1)[-1]
        self.send(
            {"type": "download", "filename": filename, "mime": MIME.get(suffix, "")},
            buffers=[data],
        )
        self.filename, self.size = filename, len(data)


_ADDRESS_ESM = """
function render({ model, el }) {
  // Under Voila (body[data-voila]) the page is the dashboard: its address carries the
  // selection, so a view can be shared. Inside JupyterLab the address is Lab's: left alone.
  const write = () => {
    if (!document.body.dataset.voila) return;
    const params = new URLSearchParams(location.search);
    for (const key of model.get("names")) params.delete(key);  // others (theme=) stay
    for (const [key, value] of new URLSearchParams(model.get("query"))) params.set(key, value);
    const query = params.toString();
    const url = location.pathname + (query ? "?" + query : "") + location.hash;
    if (url !== location.pathname + location.search + location.hash) {
      history.replaceState(history.state, "", url);
    }
  };
  if (document.body.dataset.voila) {
    // The address the page was opened with: the kernel may have been started (and the
    // notebook run) before this page asked for it (Voila's preheated kernels).
    model.send({ type: "opened", search: location.search });
  }
  model.on("change:query", write);
  write();
  return () => model.off("change:query", write);
}
export default { render };
"""


class Address(anywidget.AnyWidget):
    """Keeps the page's query string (``?taskset=…&job=…``) equal to ``query``, and says
    which address a Voila page was opened with (``on_open``)."""

    _esm = _ADDRESS_ESM
    query = traitlets.Unicode("").tag(sync=True)
    names = traitlets.List(traitlets.Unicode(), help="the parameters this widget owns").tag(
        sync=True
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._opened: list[Callable[[str], None]] = []
        self.on_msg(self._on_message)

    def on_open(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(query_string)`` when a Voila page showing this widget opens."""
        self._opened.append(callback)

    def opened(self, search: str) -> None:
        """What a page opening with ``?search`` does (the browser calls this)."""
        for callback in self._opened:
            callback(search.removeprefix("?"))

    def _on_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "opened":
            self.opened(str(content.get("search") or ""))

"""Notebook UI for the workbench: thin ipywidgets views over library calls and job events.

```python
from widgets import ScenarioForm, RunDialog, TraceViewer, Leaderboard, TrainingPanel
from widgets import CompareView, Dashboard
```
"""

from widgets.charts import Chart
from widgets.compare import CompareView
from widgets.dashboard import Dashboard, serve_dashboard
from widgets.forms import ScenarioForm
from widgets.leaderboard import Leaderboard
from widgets.run_dialog import RunDialog
from widgets.traces import TraceViewer
from widgets.training import TrainingPanel

__all__ = [
    "Chart",
    "CompareView",
    "Dashboard",
    "Leaderboard",
    "RunDialog",
    "ScenarioForm",
    "TraceViewer",
    "TrainingPanel",
    "serve_dashboard",
]

"""Notebook UI for the workbench: thin ipywidgets views over library calls and job events.

```python
from widgets import ScenarioForm, RunDialog, TraceViewer, Leaderboard, TrainingPanel
from widgets import CompareView, Dashboard, LearningCurveView
```
"""

from widgets.charts import Chart
from widgets.compare import CompareView
from widgets.curve import LearningCurveView, learning_curve_figure
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
    "LearningCurveView",
    "RunDialog",
    "ScenarioForm",
    "TraceViewer",
    "TrainingPanel",
    "learning_curve_figure",
    "serve_dashboard",
]

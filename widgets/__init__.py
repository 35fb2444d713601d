"""Notebook UI for the workbench: thin ipywidgets views over library calls and job events.

```python
from workbench.widgets import ScenarioForm, RunDialog, TraceViewer, Leaderboard, TrainingPanel
from workbench.widgets import CompareView, Dashboard, LearningCurveView
```
"""

if __name__ == "widgets":  # the checkout's old name: be workbench.widgets, not a second copy
    from workbench._aliases import alias

    alias("widgets", "workbench.widgets")


from workbench.widgets.charts import Chart
from workbench.widgets.compare import CompareView
from workbench.widgets.curve import LearningCurveView, learning_curve_figure
from workbench.widgets.dashboard import Dashboard, serve_dashboard
from workbench.widgets.forms import ScenarioForm
from workbench.widgets.leaderboard import Leaderboard
from workbench.widgets.run_dialog import RunDialog
from workbench.widgets.traces import TraceViewer
from workbench.widgets.training import TrainingPanel

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

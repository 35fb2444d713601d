"""HUD v5's ``hud.tools`` import path: ``from workbench.tools.types import EvaluationResult``.

Workbench's tools are functions registered with ``@env.tool``; this module only answers the
names HUD users import from ``hud.tools.types``: the grade a scenario may yield (see
:mod:`workbench.graders`).
"""

import sys

from workbench.graders import EvaluationResult, SubScore

__all__ = ["EvaluationResult", "SubScore"]

# `workbench.tools.types` is this module: a flat module, so the package list in
# pyproject.toml stays as it is, and the import system finds the name here.
__path__: list[str] = []
sys.modules[f"{__name__}.types"] = sys.modules[__name__]

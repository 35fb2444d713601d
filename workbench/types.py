"""HUD's ``hud.types`` names that map to Workbench's: ``Trace`` (a run's record, with its
``reward``), ``MCPToolResult`` (what ``ctx.call_tool("name", ...)`` returns: ``content``
blocks and ``isError``) and ``EvaluationResult``."""

from workbench.episode import ToolResult as MCPToolResult
from workbench.graders import EvaluationResult, SubScore
from workbench.traces import Trace

__all__ = ["EvaluationResult", "MCPToolResult", "SubScore", "Trace"]

"""Workbench models as an Inspect model provider: ``workbench/MODEL_ID``.

Inspect's scorers (``model_graded_fact``, ``model_graded_qa``, ...) ask Inspect for a grader
model; here that model is any Workbench model id, scripted and local ones included:

```python
from inspect_ai.model import get_model

grader = get_model("workbench/local:smollm2-135m")       # or "workbench/scripted:grader"
```

The same provider lets Inspect's own ``eval()`` run a Workbench model (the tests compare
its scores with Workbench's rewards): ``eval(task, model="workbench/scripted:target",
model_args={"env": REF})``, where ``env`` names the Workbench environment whose scripted
policies play (see :func:`workbench.inspect_bridge.inspect_environment`).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from inspect_ai.model import GenerateConfig, ModelAPI, ModelOutput, modelapi

from workbench.errors import WorkbenchError
from workbench.inspect_bridge.internals import sample_state
from workbench.inspect_bridge.messages import model_output, to_openai, tool_schema
from workbench.models import RunInfo, Sampling, get_model
from workbench.tasks import Task

# The Workbench task being graded, so that a scripted grader's policy finds its environment.
CURRENT_TASK: ContextVar[Task | None] = ContextVar("workbench_inspect_task", default=None)

# The tokens the models a scorer calls (the grader) spent on the run being graded, by model
# (OpenAI's names): the run's trace keeps them, and its Inspect log reports them.
GRADER_USAGE: ContextVar[dict[str, dict[str, int]] | None] = ContextVar(
    "workbench_grader_usage", default=None
)

NO_GRADER = "no-grader"  # the model a scorer gets when no grader was given


class GraderMissing(WorkbenchError):
    """An Inspect scorer asked for a model and none was given."""


class WorkbenchModelAPI(ModelAPI):
    """``workbench/MODEL_ID``: Inspect calls a Workbench model (one protocol, every id)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 - Inspect's own signature
        env: str | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        self.env_ref = env
        self.model = None if model_name == NO_GRADER else get_model(model_name)

    async def generate(self, input, tools, tool_choice, config) -> ModelOutput:  # noqa: A002
        if self.model is None:
            raise GraderMissing(
                "this Inspect task's scorer asks for a model: give a grader, e.g. "
                "from_inspect(..., grader='scripted:grader') or `--grader MODEL`"
            )
        completion = await self.model.complete(
            to_openai(input),
            [tool_schema(t) for t in tools],
            Sampling(
                temperature=config.temperature,
                top_p=config.top_p,
                max_tokens=config.max_tokens,
                seed=config.seed,
                stop=config.stop_seqs,
            ),
            RunInfo(task=self._task()),
        )
        spent = GRADER_USAGE.get()
        if spent is not None and completion.usage:
            total = spent.setdefault(f"workbench/{self.model_name}", {})
            for key, count in completion.usage.items():
                if isinstance(count, int):
                    total[key] = total.get(key, 0) + count
        return model_output(
            completion.message, self.model_name, completion.usage, completion.finish_reason
        )

    def _task(self) -> Task | None:
        """The Workbench task a scripted policy plays: the one being graded, or (under
        Inspect's own eval) the running sample as a task of ``env``."""
        task = CURRENT_TASK.get()
        if task is not None or self.env_ref is None:
            return task
        state = sample_state()
        if state is None:
            return None
        from workbench.inspect_bridge.environment import sample_args

        args = sample_args(
            state.input,
            state.target.target,
            state.sample_id,
            state.metadata,
            [c.value for c in state.choices],
        )
        return Task(env=self.env_ref, scenario="sample", args=args)


@modelapi(name="workbench")
def workbench_provider() -> type[ModelAPI]:
    return WorkbenchModelAPI


def grader_model(model_id: str | None, max_tokens: int | None = None):
    """The Inspect model that grades (temperature 0: a grade should not be a coin toss)."""
    from inspect_ai.model import get_model as inspect_model

    config = GenerateConfig(temperature=0, max_tokens=max_tokens)
    return inspect_model(f"workbench/{model_id or NO_GRADER}", config=config)

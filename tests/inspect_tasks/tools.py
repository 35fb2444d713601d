"""A tool-using task: the model adds with an ``add`` tool, graded by ``match``."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import match
from inspect_ai.solver import generate, system_message, use_tools
from inspect_ai.tool import ToolError, tool


@tool
def add():
    async def execute(x: int, y: int):
        """Add two whole numbers.

        Args:
            x: The first number.
            y: The second number.

        Returns:
            The sum of the two numbers.
        """
        if abs(x) > 10**6 or abs(y) > 10**6:
            raise ToolError("numbers up to a million only")
        return x + y

    return execute


@task
def addition():
    return Task(
        dataset=[
            Sample(input="What is 17 + 25?", target="42", metadata={"x": 17, "y": 25}),
            Sample(input="What is 123 + 877?", target="1000", metadata={"x": 123, "y": 877}),
            Sample(input="What is 2000000 + 1?", target="2000001", metadata={"x": 2000000, "y": 1}),
        ],
        solver=[
            system_message("Use the add tool, then answer with the number only."),
            use_tools(add()),
            generate(),
        ],
        scorer=match(numeric=True),
    )

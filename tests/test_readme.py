"""The README's examples run as written."""

import ast
import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


async def test_the_coming_from_hud_example_runs_and_prints_its_reward(capsys):
    (example,) = python_blocks(section("Coming from HUD"))
    code = compile(example, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict = {}
    await eval(code, namespace)  # noqa: S307 - the README's own example
    assert capsys.readouterr().out.strip() == "1.0"
    assert namespace["ctx"].trace.stop_reason == "done"
    assert namespace["task"].to_dict()["columns"] == {"category": "repeated-letters"}

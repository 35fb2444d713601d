"""Print this project's requirements for some extras, one per line, leaving out some packages.

    python tools/requirements.py dev train --except llama-cpp-python

`make` installs these while it compiles llama.cpp (the binding, left out here, is built from
source: see the Makefile); the extras' references to this project itself
(``agent-research-workbench[gateway,...]``) are followed. Standard library only: it runs in a
fresh virtual environment before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[([^\]]*)\])?")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(extras: list[str], leave_out: set[str], pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    ours = _canonical(project["name"])
    leave_out = {_canonical(n) for n in leave_out}
    found: list[str] = []
    todo, seen = [None, *extras], set()
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        if extra is not None and extra not in optional:
            raise SystemExit(f"no extra '{extra}' in {pyproject} (it has: {', '.join(optional)})")
        for requirement in project["dependencies"] if extra is None else optional[extra]:
            match = _NAME.match(requirement)
            name = _canonical(match.group(1))
            if name == ours:
                todo += [e.strip() for e in (match.group(3) or "").split(",") if e.strip()]
            elif name not in leave_out and requirement not in found:
                found.append(requirement)
    return found


def main(argv: list[str]) -> int:
    extras, leave_out = argv, []
    if "--except" in argv:
        at = argv.index("--except")
        extras, leave_out = argv[:at], argv[at + 1 :]
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    print("\n".join(requirements(extras, set(leave_out), pyproject)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

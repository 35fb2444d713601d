"""The package's public face: everything in __all__ imports, and `import workbench` is light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import workbench

PACKAGE = Path(workbench.__file__).resolve().parent


def test_every_public_name_imports():
    assert sorted(workbench.__all__) == sorted(workbench._EXPORTS)
    for name in workbench.__all__:
        assert getattr(workbench, name) is not None, name
    assert callable(workbench.compare) and callable(workbench.leaderboard)  # not the modules
    assert workbench.__version__


def test_importing_the_package_imports_nothing_heavy():
    heavy = ["pandas", "sqlalchemy", "numpy", "torch", "openai", "typer", "rich", "datasets"]
    code = (
        "import sys, workbench\n"
        "from workbench import Environment, Task, answer, call\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(
        ".__init__"
    )


def _imports(path: Path, known: set[str]) -> set[str]:
    """The workbench modules a module imports at its top level (not inside functions):
    ``from workbench.training import registry`` is the module workbench.training.registry."""
    name = _module_name(path)
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                module = f"{package}.{module}" if module else package
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in known else module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.split(".")[0] == "workbench" and m != name}


def test_no_import_cycle_between_modules_at_import_time():
    """A reader can follow the modules in one direction: no cycle of top-level imports."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = {name: _imports(path, set(paths)) for name, path in paths.items()}

    def resolve(target: str) -> str | None:  # `from workbench.models import x` -> a module
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    graph = {m: {resolve(t) for t in deps} - {None, m} for m, deps in modules.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module) :] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for dep in sorted(graph.get(module, ())):
            if dep != "workbench":  # the root imports nothing at run time
                visit(dep, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_only_the_store_touches_the_database():
    """Persistence has one home: no other module imports the store's tables or opens a
    connection on its engine; the store does not import the leaderboard (it sits below it)."""
    found = []
    for path in [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "widgets").rglob("*.py")]:
        if path == PACKAGE / "store.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "workbench.store":
                found += [f"{path.name}: {a.name}" for a in node.names if a.name.endswith("_table")]
            if isinstance(node, ast.Attribute) and node.attr in ("begin", "connect"):
                if isinstance(node.value, ast.Attribute) and node.value.attr == "engine":
                    found.append(f"{path.name}:{node.lineno}: engine.{node.attr}()")
    assert found == []
    store = ast.parse((PACKAGE / "store.py").read_text())
    imported = {n.module for n in ast.walk(store) if isinstance(n, ast.ImportFrom)}
    assert "workbench.leaderboard" not in imported


def test_backends_are_plain_implementations_that_do_not_know_the_job():
    """The job plays runs through workbench.backends' protocol: neither module imports the
    other's side, even inside a function (the Ray pool once called the job's internals)."""

    def every_import(module: str) -> set[str]:
        tree = ast.parse((PACKAGE / f"{module}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        return found

    assert "workbench.jobs" not in every_import("ray_backend")
    assert "workbench.jobs" not in every_import("backends")
    assert "workbench.ray_backend" not in every_import("jobs")
    from workbench.backends import Backend, LocalBackend
    from workbench.ray_backend import RayBackend

    for backend in (LocalBackend, RayBackend):
        assert {"play", "close"} <= set(vars(backend)), backend
    assert Backend.__doc__


def _declared_packages() -> list[str]:
    import tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["packages"]


def test_every_package_folder_is_installed_under_the_workbench_namespace():
    root = PACKAGE.parent
    found = []
    for folder, prefix in (("workbench", "workbench"), ("widgets", "workbench.widgets"),
                           ("environments", "workbench.environments")):  # fmt: skip
        for init in (root / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(root / folder).parts
            found.append(".".join((prefix, *parts)))
    assert sorted(found) == sorted(_declared_packages())


def test_the_checkouts_old_import_paths_are_the_installed_modules():
    import importlib.util

    import workbench.environments.shop
    import workbench.widgets
    from workbench.widgets.charts import Chart as InstalledChart

    import environments.shop
    import widgets
    from widgets.charts import Chart

    assert widgets is workbench.widgets and Chart is InstalledChart
    assert environments.shop is workbench.environments.shop
    assert environments.shop.env.ref == "shop"
    # the modules keep their own spec: their files can still be found (the Docker runtime
    # copies a shipped environment's folder from it)
    spec = importlib.util.find_spec("workbench.environments.shop")
    assert spec.name == "workbench.environments.shop" and spec.submodule_search_locations


@pytest.mark.slow
def test_the_wheel_installs_beside_a_distribution_that_owns_widgets(tmp_path):
    """The wheel adds only `workbench` at the top level: a clean venv that already has a
    package named `widgets` keeps it, and gets workbench.widgets and workbench.environments."""
    import shutil
    import venv
    import zipfile

    other = tmp_path / "other"  # someone else's distribution with a top-level `widgets`
    (other / "widgets").mkdir(parents=True)
    (other / "widgets" / "__init__.py").write_text("OWNER = 'someone else'\n")
    (other / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "widgets"\nversion = "1.0"\n'
        "[tool.setuptools]\npackages = ['widgets']\n"
    )
    source = tmp_path / "source"  # a copy: building leaves build/ behind
    source.mkdir()
    for part in ("pyproject.toml", "README.md", "workbench", "widgets", "environments"):
        copy = shutil.copytree if (PACKAGE.parent / part).is_dir() else shutil.copy
        copy(PACKAGE.parent / part, source / part)
    dist = tmp_path / "dist"
    for project in (source, other):  # wheels, built offline with our setuptools
        build = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "-w", str(dist), str(project)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("agent_research_workbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"workbench"}
    assert "workbench/environments/shop/tasksets/shop-basics.jsonl" in names
    assert "workbench/widgets/charts.py" in names

    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = str(env / "bin" / "python")
    out = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         *sorted(str(w) for w in dist.glob("*.whl"))],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    check = (
        "import importlib.util as u, widgets, workbench\n"
        "print(widgets.OWNER, workbench.__version__,\n"
        "      u.find_spec('workbench.widgets') is not None,\n"
        "      u.find_spec('workbench.environments.shop') is not None)"
    )
    out = subprocess.run([python, "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["someone", "else", _pyproject_version(), "True", "True"]


def _pyproject_version() -> str:
    import tomllib

    return tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]["version"]

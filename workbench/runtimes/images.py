"""Environment images, built with no image registry: ``workbench env build shop``.

The base image is a Debian root file system made by ``debootstrap`` (``workbench-base:bookworm``,
built once and reused). An environment's image adds, copied from this machine:

- the Python packages its server needs (the MCP SDK, pydantic, ...), taken from this
  interpreter's site-packages (the base has the same Python minor version);
- the ``workbench`` package and the environment's own code;
- the packages of the environment's ``requirements.txt``, if it has one, installed here with
  ``pip install --target`` into the folder the build copies in;
- the environment's ``Dockerfile`` fragment, if it has one (appended to the generated one).

No container ever needs the network. An image is rebuilt when any of that changes (a hash of
it is the image's label).

For an environment that runs untrusted code (``allow_inprocess=False``), the environment's
own files (its hidden tests among them) are readable by root only: its server runs as root
there, and the model-written code as ``nobody`` (see :mod:`workbench.runtimes.docker`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError
from workbench.references import SHIPPED

if TYPE_CHECKING:
    from workbench.environment import Environment

BASE_IMAGE = "workbench-base:bookworm"
APP = "/opt/workbench/app"
SITE = "/opt/workbench/site"
SERVER_REQUIREMENTS = ("mcp", "pydantic", "docstring-parser")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_base_image() -> str:
    """The Debian base image, made with debootstrap the first time (about a minute)."""
    from workbench.runtimes.docker import docker_client

    client = docker_client()
    if client.api.images(name=BASE_IMAGE, quiet=True):
        return BASE_IMAGE
    if shutil.which("debootstrap") is None:
        raise WorkbenchError(
            f"building {BASE_IMAGE} needs debootstrap: `apt-get install debootstrap` (as root)"
        )
    _say(f"building {BASE_IMAGE} with debootstrap (once) …")
    with tempfile.TemporaryDirectory() as tmp:
        root, archive = Path(tmp) / "root", Path(tmp) / "root.tar"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3", "bookworm", str(root)],
            check=True,
            capture_output=True,
        )
        subprocess.run(["tar", "-C", str(root), "-cf", str(archive), "."], check=True)
        repository, tag = BASE_IMAGE.split(":")
        client.api.import_image_from_file(str(archive), repository=repository, tag=tag)
    return BASE_IMAGE


# -- what goes into an image --------------------------------------------------------------


def _distributions(names: tuple[str, ...]) -> list[metadata.Distribution]:
    """These distributions and everything they require (no extras), from this interpreter."""
    from packaging.requirements import Requirement

    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, str]] = set()
    todo = [(name, "") for name in names]  # (requirement, the extra that asked for it)
    while todo:
        text, extra = todo.pop()
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        key = requirement.name.lower().replace("_", "-")
        wanted = {""} | set(requirement.extras)
        if all((key, e) in seen for e in wanted):
            continue
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            continue
        found[key] = dist
        for e in wanted - {x for k, x in seen if k == key}:
            seen.add((key, e))
            todo.extend((r, e) for r in dist.requires or [])
    return sorted(found.values(), key=lambda d: d.metadata["Name"].lower())


def _env_source(env: Environment) -> tuple[Path, str, str]:
    """(what to copy, its name under APP, the reference inside the container)."""
    ref = env.ref
    if ":" in ref:
        target, attr = ref.rsplit(":", 1)
        if target.endswith(".py"):
            path = Path(target).resolve()
            return path, path.name, f"{APP}/{path.name}:{attr}"
        top = target.split(".")[0]
        spec = importlib.util.find_spec(top)
        origin = Path(
            spec.submodule_search_locations[0] if spec.submodule_search_locations else spec.origin
        )
        return origin, origin.name, ref
    spec = importlib.util.find_spec(f"{SHIPPED}.{ref}")
    return Path(spec.submodule_search_locations[0]), f"environments/{ref}", ref


def container_ref(env: Environment) -> str:
    """How the server inside the container names the environment."""
    return _env_source(env)[2]


def _env_dir(env: Environment) -> Path:
    source = _env_source(env)[0]
    return source if source.is_dir() else source.parent


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def _workbench_dir() -> Path:
    return Path(importlib.util.find_spec("workbench").submodule_search_locations[0])


def _fingerprint(env: Environment, dists: list[metadata.Distribution], fragment: str) -> str:
    from workbench.runtimes.docker import untrusted

    digest = hashlib.sha256()
    digest.update(BASE_IMAGE.encode() + fragment.encode())
    digest.update(b"app readable by root only" if untrusted(env) else b"")
    for dist in dists:
        digest.update(f"{dist.metadata['Name']}=={dist.version}".encode())
    source = _env_source(env)[0]
    for root in (_workbench_dir(), source):
        for file in _files(root):
            digest.update(str(file.relative_to(root if root.is_dir() else root.parent)).encode())
            digest.update(file.read_bytes())
    requirements = _env_dir(env) / "requirements.txt"
    if requirements.exists():
        digest.update(requirements.read_bytes())
    return digest.hexdigest()[:16]


def image_name(env: Environment) -> str:
    return f"workbench-env-{env.name.lower()}:latest"


_lock = threading.Lock()
_ready: set[str] = set()  # images checked up to date by this process


def ensure_image(env: Environment, *, rebuild: bool = False) -> str:
    """The environment's image, built if it is missing or out of date; returns its name.

    Checked once per process (concurrent runs wait for one build).
    """
    name = image_name(env)
    if name in _ready and not rebuild:
        return name
    with _lock:
        if name in _ready and not rebuild:
            return name
        _build(env, rebuild)
        _ready.add(name)
    return name


def _build(env: Environment, rebuild: bool) -> None:
    from workbench.runtimes.docker import docker_client

    api = docker_client().api
    dists = _distributions(SERVER_REQUIREMENTS)
    fragment_file = _env_dir(env) / "Dockerfile"
    fragment = fragment_file.read_text() if fragment_file.exists() else ""
    fingerprint = _fingerprint(env, dists, fragment)
    name = image_name(env)
    if not rebuild:
        for image in api.images(name=name):
            if (image.get("Labels") or {}).get("workbench.fingerprint") == fingerprint:
                return
    ensure_base_image()
    _say(f"building {name} …")
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        _copy_site(dists, context / "site")
        site_workbench = context / "site" / "workbench"
        shutil.copytree(_workbench_dir(), site_workbench, ignore=_library_only)
        source, target, _ = _env_source(env)
        app = context / "app"
        app.mkdir()
        if target.startswith("environments/"):
            # A shipped environment lives in the app folder (where its files have always
            # been); workbench.environments, the name it is imported by, points there.
            (app / "environments").mkdir()
            shutil.copy(Path(source).parent / "__init__.py", app / "environments" / "__init__.py")
            (site_workbench / "environments").symlink_to(f"{APP}/environments")
        if source.is_dir():
            shutil.copytree(source, app / target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, app / target)
        from workbench.runtimes.docker import untrusted

        if untrusted(env):
            _owner_only(app)  # COPY keeps the modes; the files belong to root in the image
        requirements = _env_dir(env) / "requirements.txt"
        if requirements.exists():  # installed here: the build and the container stay offline
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--target",
                    str(context / "site"),
                    "-r",
                    str(requirements),
                ],
                check=True,
            )
        (context / "Dockerfile").write_text(
            f"FROM {BASE_IMAGE}\n"
            f"COPY site {SITE}\n"
            f"COPY app {APP}\n"
            f"ENV PYTHONPATH={SITE}:{APP} PYTHONDONTWRITEBYTECODE=1 HOME=/tmp\n"
            + (fragment.rstrip() + "\n" if fragment else "")
            + f"LABEL workbench.fingerprint={fingerprint} workbench.env={env.name}\n"
            "USER 65534:65534\nWORKDIR /tmp\n"
        )
        for line in api.build(path=str(context), tag=name, rm=True, forcerm=True, decode=True):
            if "error" in line:
                raise WorkbenchError(f"building {name} failed: {line['error'].strip()}")


def _library_only(folder: str, names: list[str]) -> set[str]:
    """What the image's copy of the workbench package leaves out: caches, and (from a wheel
    install) the widgets and the example environments: only the one served goes in."""
    skip = {n for n in names if n == "__pycache__"}
    if Path(folder).resolve() == _workbench_dir().resolve():
        skip |= {n for n in names if n in ("widgets", "environments")}
    return skip


def _owner_only(folder: Path) -> None:
    """Modes 0700 and 0600 for a folder and everything in it."""
    folder.chmod(0o700)
    for path in folder.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)


def _copy_site(dists: list[metadata.Distribution], site: Path) -> None:
    """Copy installed distributions file by file (their RECORD) into a site folder."""
    site.mkdir(parents=True)
    for dist in dists:
        base = Path(dist.locate_file("")).resolve()
        for file in dist.files or []:
            path = Path(dist.locate_file(file)).resolve()
            if "__pycache__" in path.parts or not path.is_file() or not path.is_relative_to(base):
                continue
            target = site / path.relative_to(base)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)

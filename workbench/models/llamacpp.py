"""The llama.cpp engine: ``local:`` GGUF models on the CPU at llama.cpp's speed.

```python
model = get_model("local:smollm2-135m")  # a GGUF, no CUDA GPU: this engine
model = get_model("local:smollm2-135m?engine=transformers")  # the reference engine instead
```

The model is read as it is shipped (the bundled SmolLM2 is a 4-bit GGUF) and run by
llama.cpp through ``llama-cpp-python``'s C API; the transformers engine de-quantises it to
fp32 and reads four times the bytes per token. Everything around the model is the
reference engine's: the Hugging Face tokenizer and chat template (the same prompt tokens;
read by :class:`~workbench.models.tokenizer.ChatTokenizer`, without transformers' classes),
the queue, stop rules, sampling options and tool-call text format
(:class:`~workbench.models.local.BatchingEngine`).

Continuous batching: every request in flight is a llama.cpp sequence (one of ``max_batch``
slots), each with a KV cache of its own (``SEQUENCE_CELLS`` tokens: prompt and completion).
Between decoding steps, requests that arrived take a free slot, are prefilled (together, in
one call; the start of a prompt that its slot already holds is reused, or copied from another
slot that holds more of it) and join the batch; a finished row leaves at once, its slot
keeping the cache of its prompt and answer for a next request that begins the same (an
agent's next step). A decoding step is one pass over the model for all rows where it can be
(see ``_decode_step``). A greedy answer does not depend on what else is or was in flight
(tests hold it to that).

A trained fork is served the same way: its LoRA lineage is merged into the base weights
(as the reference engine does), written as a GGUF with the base's metadata and tokenizer,
and quantised to 8 bits (``FORK_QUANTISATION``), once per checkpoint (under
``.workbench/bases/``). A fork runs about as fast as its base.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.models.hf import (
    apply_adapters,
    base_copy,
    load_model,
    load_tokenizer,
    resolve_local,
)
from workbench.models.local import BatchingEngine, GenerationError, Request

# Each request in flight has a cache of its own (``kv_unified`` off), of this many tokens
# (prompt and completion; f16: ~47 MB each for the bundled model). One cache shared by all
# sequences lays a sequence's tokens out among the others', and attention then sums them in
# an order that depends on what else is in flight: greedy texts changed with the batch.
SEQUENCE_CELLS = 2048
# A pass over the model computes each token's numbers the same whatever else is in it and
# however a prompt is cut (the Makefile's Q4_1 kernel and llamafile's 8-bit one sum a row's
# terms in one order; attention goes row by row; tests/test_local_model.py holds it to that).
# So the prompts of requests that arrive together are prefilled in one call (up to this many
# tokens), and a new request reuses every token of its prompt's start that a slot's cache
# holds (an agent's next step begins with its last prompt; runs share a system prompt).
PREFILL_BATCH = 512
# Without those patches (llama-cpp-python installed from PyPI), each prompt is prefilled alone
# in calls of this many tokens from its start (under the 64 that take another attention path)
# and reused in whole such blocks; long conversations may still answer differently alone.
UNPATCHED_BLOCK = 16
# A request copies another slot's cache when that holds at least this many more tokens of its
# prompt's start than its own slot (a copy costs less than a token to compute with the
# patched build, what a few tokens cost without),
# and waits for the next prefill call (one more pass) when a prompt in this one shares that
# many more: it copies them after.
SHARE_AFTER = 8
# Idle slots between decoding rows are given a token (see ``_decode_step``) when at most this
# many lie together: a pass over the model costs about three rows' work here.
GAP_FILL = 2
# A fork's merged weights, quantised to 8 bits: a 4-bit rounding step is coarser than much
# of what LoRA training changes (the fork would lose part of what it learned), and on this
# build 8-bit weights decode as fast as the shipped 4-bit ones (benchmarks/README.md).
FORK_QUANTISATION = "Q8_0"


@dataclass
class _Row:
    """One request being decoded: its llama.cpp sequence and where it stands."""

    request: Request
    slot: int
    position: int = 0  # tokens in this sequence's cache
    logits: np.ndarray | None = None  # for its next token
    last: int | None = None  # its last token, not yet in the cache


def _common_start(a: list[int], b: list[int], most: int) -> int:
    """How many tokens ``a`` and ``b`` begin with alike, at most ``most`` (slices compare in
    C: a bisection, for prompts of thousands of tokens and 16 slots to look at)."""
    low, high = 0, max(min(len(a), len(b), most), 0)
    if a[:high] == b[:high]:
        return high
    while high - low > 1:  # a[:low] == b[:low], a[:high] != b[:high]
        middle = (low + high) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle
    return low


def _attention_width(cells: int) -> int:
    """How many cache cells llama.cpp attends over for a sequence using ``cells`` of them
    (rounded up to 256, ``get_n_kv``)."""
    return -(-cells // 256) * 256


@dataclass
class _Idle:
    """An idle slot given a token in a decoding step (see ``_decode_step``)."""

    slot: int


_GGML_LOG_LEVEL_ERROR = 4  # ggml.h: enum ggml_log_level
_BACKEND_READY = False
_LOG_CALLBACK = None  # kept alive: llama.cpp calls it for as long as the process lives


def _patched(llama_cpp) -> bool:
    """Whether this llama.cpp build has the workbench's patches (``make`` builds it so)."""
    for library in sorted((Path(llama_cpp.__file__).parent / "lib").glob("*ggml-cpu*")):
        try:
            if hasattr(ctypes.CDLL(str(library)), "workbench_llama_patches"):
                return True
        except OSError:
            continue
    return False


def _warn_unpatched() -> None:
    warnings.warn(
        "this llama.cpp build lacks the workbench's patches (patches/llama.cpp; `make` builds "
        "them): prompts prefill in small blocks, batches decode more slowly, and a greedy "
        "answer to a conversation past 256 tokens can depend on what else is in flight",
        stacklevel=3,
    )


def _backend(llama_cpp) -> None:
    """Initialise llama.cpp once, its log sent to nowhere but errors (to stderr)."""
    global _BACKEND_READY, _LOG_CALLBACK
    if _BACKEND_READY:
        return
    import sys

    @llama_cpp.llama_log_callback
    def log(level, text, _user_data):
        if level == _GGML_LOG_LEVEL_ERROR:
            sys.stderr.write(text.decode("utf-8", "replace"))

    _LOG_CALLBACK = log
    llama_cpp.llama_log_set(log, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    _BACKEND_READY = True


class LlamaCppEngine(BatchingEngine):
    """A GGUF model in llama.cpp and the thread that serves batched generation requests."""

    engine = "llama.cpp"

    def __init__(
        self, name: str, adapters: tuple[str, ...] = (), max_batch: int = 16, fork: bool = False
    ):
        import llama_cpp

        self.L = llama_cpp
        started = time.perf_counter()
        folder, gguf = resolve_local(name)
        if gguf is None:
            raise GenerationError(
                f"local:{name}: the llama.cpp engine serves GGUF models; this is a Hugging Face "
                "folder: use local:NAME?engine=transformers"
            )
        self.tokenizer = load_tokenizer(name)
        # a fork (trained or not yet) in the fork format; the base as shipped
        path = fork_gguf(name, adapters) if adapters or fork else folder / gguf
        _backend(llama_cpp)
        # Prompt tokens per prefill call, and the unit of reuse (see PREFILL_BATCH)
        self._block = 1 if _patched(llama_cpp) else UNPATCHED_BLOCK
        if self._block > 1:
            _warn_unpatched()
        self._model = llama_cpp.llama_model_load_from_file(
            str(path).encode(), llama_cpp.llama_model_default_params()
        )
        if not self._model:
            raise GenerationError(f"llama.cpp could not load {path}")
        self.max_batch = max_batch
        params = llama_cpp.llama_context_default_params()
        self._spare = max_batch  # a sequence that is no slot: see _compact
        params.n_ctx = SEQUENCE_CELLS * (max_batch + 1)
        params.n_batch = params.n_ubatch = max(PREFILL_BATCH, max_batch)
        params.n_seq_max = max_batch + 1
        params.kv_unified = False  # a cache per sequence: see SEQUENCE_CELLS
        params.n_threads = params.n_threads_batch = usable_cores()
        self._ctx = llama_cpp.llama_init_from_model(self._model, params)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise GenerationError("llama.cpp could not make a context for the model")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        # A recurrent model's state cannot lose its last tokens: no reuse, copies or padding.
        self._partial_removal = not (
            llama_cpp.llama_model_is_recurrent(self._model)
            or llama_cpp.llama_model_is_hybrid(self._model)
        )
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self._held: list[list[int]] = [[] for _ in range(max_batch)]  # each cache's tokens
        self.reused_tokens = 0  # prompt tokens not prefilled again, since the engine started
        self.copied_prompts = 0  # of them, prompts whose start came from another slot's cache
        self.moved_rows = 0  # rows moved to a lower slot to close a gap (_compact)
        vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        self.context = min(llama_cpp.llama_model_n_ctx_train(self._model), SEQUENCE_CELLS)
        # The model's end of sequence (the GGUF's, as the reference engine takes its config's):
        # the tokenizer's own says <|im_start|> for the bundled model, which the reference
        # engine does not stop at.
        eos = llama_cpp.llama_vocab_eos(vocab)
        self.stop_ids = self._special_stop_ids(eos if eos >= 0 else None)
        self.path = path
        self.load_seconds = time.perf_counter() - started
        self._start_serving()

    def _release(self) -> None:
        L = self.L
        L.llama_batch_free(self._batch)
        L.llama_free(self._ctx)
        L.llama_model_free(self._model)

    # -- the generation thread ------------------------------------------------------------

    def _serve(self) -> None:
        rows: dict[int, _Row] = {}
        waiting: list[Request] = []  # taken, not yet admitted (no free slot)
        while True:
            room = self.max_batch - len(rows) - len(waiting)
            arrived = self._take(max(room, 0), wait=not rows and not waiting)
            if arrived is None:  # closing
                self._refuse([row.request for row in rows.values()] + waiting)
                return
            waiting += arrived
            try:
                admitted = self._admit(waiting, rows)
                if admitted:
                    self.batch_sizes.append(len(rows))
                    self._prefill(admitted)
                for row in list(rows.values()):
                    self._advance(row, rows)
                if rows:
                    self._compact(rows)
                    self._decode_step(list(rows.values()))
            except Exception as e:  # fail these requests, keep serving later ones
                self._fail([row.request for row in rows.values()] + waiting, e)
                rows.clear()
                waiting.clear()
                self.L.llama_memory_clear(self._memory, True)
                self._held = [[] for _ in range(self.max_batch)]

    def _admit(self, waiting: list[Request], rows: dict[int, _Row]) -> list[_Row]:
        """Give waiting requests a free slot (a sequence and its cache), in order: of the slots
        holding about the longest reusable start of its prompt (within ``SHARE_AFTER``), the
        lowest, so that the rows in flight stay neighbours (see ``_decode_step``)."""
        free = [slot for slot in range(self.max_batch) if slot not in rows]
        admitted = []
        while waiting and free:
            r = waiting.pop(0)
            if r.future.cancelled():
                continue
            reusable = {s: self._reusable(s, r.prompt_ids) for s in free}
            most = max(reusable.values())
            slot = min(s for s in free if reusable[s] > most - SHARE_AFTER)
            free.remove(slot)
            row = _Row(r, slot)
            r.generator = self._generator(r)
            rows[row.slot] = row
            admitted.append(row)
        return admitted

    def _reusable(self, slot: int, ids: list[int]) -> int:
        """How many of ``ids`` the slot's cache already holds from its start, never the last
        token (its logits are needed)."""
        return self._common(self._held[slot], ids)

    def _common(self, tokens: list[int], ids: list[int]) -> int:
        """How much of the start of ``ids`` could be taken from a cache holding ``tokens``:
        whole blocks of ``self._block``, never the last token; none for a recurrent model."""
        if not self._partial_removal:
            return 0
        same = _common_start(tokens, ids, len(ids) - 1)
        return same // self._block * self._block

    def _prefill(self, admitted: list[_Row]) -> None:
        """Run the new rows' prompts through the model, each last token's logits kept: in one
        call, what a slot holds of each reused (its own slot's cache, or another's that holds
        more: that cache is copied). A prompt that shares more of its start with another in
        the call than any cache holds waits for a second call, and copies it from there."""
        pending = admitted
        while pending:
            computing = {row.slot for row in pending}  # caches about to change
            now: list[tuple[_Row, int, int]] = []  # row, donor slot, tokens reused
            later = []
            for row in pending:
                ids = row.request.prompt_ids
                donor, reused = row.slot, self._reusable(row.slot, ids)
                for slot in range(self.max_batch):
                    if slot not in computing:
                        held = self._reusable(slot, ids)
                        if held >= reused + SHARE_AFTER:
                            donor, reused = slot, held
                shared = max(
                    (self._common(o.request.prompt_ids, ids) for o, _, _ in now), default=0
                )
                if shared >= reused + SHARE_AFTER:
                    later.append(row)
                else:
                    now.append((row, donor, reused))
            pieces = []  # each prompt's tokens to compute
            for row, donor, reused in now:
                ids = row.request.prompt_ids
                if donor != row.slot:
                    # the cells the donor uses (patched build, ~1.4 ms for 100 cells;
                    # unpatched: its whole cache, ~47 MB, ~5 ms), against ~2 ms a token
                    self.L.llama_memory_seq_cp(self._memory, donor, row.slot, -1, -1)
                    self.copied_prompts += 1
                self._held[row.slot] = []
                self.L.llama_memory_seq_rm(self._memory, row.slot, reused, -1)
                self.reused_tokens += reused
                pieces.append(
                    [(row, ids[i], i, i == len(ids) - 1) for i in range(reused, len(ids))]
                )
            # all prompts in calls of PREFILL_BATCH, or (unpatched) each alone in blocks from
            # its start (what it reused is whole blocks)
            size = PREFILL_BATCH if self._block == 1 else self._block
            if self._block == 1:
                pieces = [[entry for piece in pieces for entry in piece]]
            for piece in pieces:
                for start in range(0, len(piece), size):
                    self._decode(piece[start : start + size])
            for row, _, _ in now:
                self._held[row.slot] = list(row.request.prompt_ids)
                row.position = len(row.request.prompt_ids)
            pending = later

    def _advance(self, row: _Row, rows: dict[int, _Row]) -> None:
        """Pick the row's next token; a finished (or abandoned) row leaves the batch."""
        r = row.request
        if r.future.cancelled():  # its caller went away (a client hung up): drop the row
            r.finish_reason = "cancelled"
        else:
            token = self._pick(row.logits, r)
            self._accept(r, token)
            row.last = token
        if r.finish_reason is not None:
            if r.finish_reason != "cancelled":
                self._finish(r)
            # Its cache stays, for a next prompt that begins the same (an agent's next step:
            # this prompt, then this answer): the tokens at its positions so far.
            self._held[row.slot] = (r.prompt_ids + r.generated)[: row.position]
            del rows[row.slot]

    def _compact(self, rows: dict[int, _Row]) -> None:
        """While a gap wider than ``GAP_FILL`` splits the rows in flight into passes (the tail
        of a job: no request comes to fill it), the top row moves down into the lowest free
        slot: its cache and that slot's swap places through the spare sequence (three copies
        of the cells in use, ~4 ms with the patched build, ~14 ms of whole caches without,
        against ~18 ms that a pass costs every step), so nothing a slot held is lost, and the
        row's numbers are the same (its cells are copied as they are). Smaller gaps get
        fillers (``GAP_FILL``): moving for every gap measured slower even with cheap copies."""
        if not self._partial_removal:
            return
        copy = self.L.llama_memory_seq_cp
        while True:
            slots = sorted(rows)
            if all(b - a - 1 <= GAP_FILL for a, b in zip(slots, slots[1:], strict=False)):
                return
            top = slots[-1]
            free = min(slot for slot in range(top) if slot not in rows)
            copy(self._memory, free, self._spare, -1, -1)
            copy(self._memory, top, free, -1, -1)
            copy(self._memory, self._spare, top, -1, -1)
            self._held[free], self._held[top] = self._held[top], self._held[free]
            row = rows.pop(top)
            row.slot = free
            rows[free] = row
            self.moved_rows += 1

    def _decode_step(self, rows: list[_Row]) -> None:
        """One token of every row. llama.cpp computes sequences that have caches of their own
        in runs of consecutive ids, one pass over the model per run: the rows go in slot
        order, and an idle slot in a short gap between rows (``GAP_FILL``) gets a token of
        its own, removed again after, so that the rows either side share a pass."""
        by_slot = {row.slot: row for row in rows}
        entries: list[tuple[_Row | _Idle, int, int, bool]] = []
        padding = []
        # A pass attends over the longest cache among its sequences: an idle slot holding
        # more than the rows would widen every row's attention, and is left out.
        width = max(_attention_width(row.position + 1) for row in rows)
        previous = None
        for slot in sorted(by_slot):
            gap = range(previous + 1, slot) if previous is not None else range(0)
            if self._partial_removal and 0 < len(gap) <= GAP_FILL:
                for idle in gap:
                    end = self.L.llama_memory_seq_pos_max(self._memory, idle) + 1
                    if end >= SEQUENCE_CELLS or _attention_width(end + 1) > width:
                        continue  # the run is split there
                    entries.append((_Idle(idle), 0, end, False))
                    padding.append((idle, end))
            row = by_slot[slot]
            entries.append((row, row.last, row.position, True))
            previous = slot
        self._decode(entries)
        for idle, end in padding:
            self.L.llama_memory_seq_rm(self._memory, idle, end, -1)
        for row in rows:
            row.position += 1

    def _decode(self, entries: list[tuple[_Row, int, int, bool]]) -> None:
        """One llama_decode call; rows whose entry asked for logits get them."""
        L, batch = self.L, self._batch
        for i, (row, token, position, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = row.slot
            batch.logits[i] = logits
        batch.n_tokens = len(entries)
        status = L.llama_decode(self._ctx, batch)
        if status != 0:
            raise GenerationError(f"llama.cpp could not decode a batch (status {status})")
        for i, (row, _, _, logits) in enumerate(entries):
            if logits:
                pointer = L.llama_get_logits_ith(self._ctx, i)
                row.logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def _generator(self, r: Request):
        if r.temperature == 0:
            return None
        seed = r.seed if r.seed is not None else int.from_bytes(os.urandom(4), "big")
        return np.random.default_rng(seed)

    def _pick(self, logits: np.ndarray, r: Request) -> int:
        if r.temperature == 0:
            return int(np.argmax(logits))
        z = logits.astype(np.float64) / r.temperature
        probs = np.exp(z - z.max())
        probs /= probs.sum()
        if r.top_p < 1.0:
            order = np.argsort(-probs)
            sorted_probs = probs[order]
            keep = np.cumsum(sorted_probs) - sorted_probs < r.top_p  # keeps the top token
            probs = np.zeros_like(probs)
            probs[order[keep]] = sorted_probs[keep]
            probs /= probs.sum()
        return int(r.generator.choice(len(probs), p=probs))


# -- trained forks ----------------------------------------------------------------------------


def fork_gguf(name: str, adapters: tuple[str, ...]) -> Path:
    """A GGUF of the base ``name`` with a LoRA lineage merged in (none: a fork before
    training), quantised to ``FORK_QUANTISATION``; made once per lineage and kept under
    ``.workbench/bases/``."""
    folder, gguf = resolve_local(name)
    digest = hashlib.sha256()
    for adapter in adapters:
        for file in sorted(Path(adapter).glob("*")):
            if file.is_file():
                digest.update(
                    f"{file.resolve()}:{file.stat().st_size}:{file.stat().st_mtime_ns}".encode()
                )
    copy = base_copy(name)
    target = (
        copy.with_name(f"{copy.name}.forks") / f"{digest.hexdigest()[:20]}.{FORK_QUANTISATION}.gguf"
    )
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    model, _ = load_model(name)
    model = apply_adapters(model, [Path(a) for a in adapters])
    weights = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    del model
    full = target.with_name(f"{target.name}.f32-{os.getpid()}")
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    try:
        write_gguf_like(folder / gguf, weights, full)
        quantize(full, partial, FORK_QUANTISATION)
        os.replace(partial, target)  # whole or not at all
    finally:
        for leftover in (full, partial):
            leftover.unlink(missing_ok=True)
    return target


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's rotary layout of a query/key projection to llama.cpp's (the inverse of
    what transformers undoes when it reads a GGUF)."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_gguf_like(base: Path, weights: dict[str, np.ndarray], out: Path) -> None:
    """Write ``weights`` (Hugging Face names, fp32) as an fp32 GGUF with every key of the
    GGUF ``base`` (architecture, tokenizer, chat template) and its tensors' names."""
    import gguf

    reader = gguf.GGUFReader(base)
    arch = reader.fields["general.architecture"].contents()
    if arch != "llama":
        raise GenerationError(
            f"serving a trained fork with llama.cpp supports llama-architecture bases; "
            f"{base.name} is '{arch}': use ?engine=transformers"
        )
    heads = int(reader.fields[f"{arch}.attention.head_count"].contents())
    kv_heads = int(reader.fields[f"{arch}.attention.head_count_kv"].contents())
    blocks = int(reader.fields[f"{arch}.block_count"].contents())
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, blocks)
    ours: dict[str, str] = {}
    for hf_name in weights:
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is not None:
            ours.setdefault(gguf_name, hf_name)
    writer = gguf.GGUFWriter(out, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub_type)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for tensor in reader.tensors:
        hf_name = ours.get(tensor.name)
        if hf_name is None:
            raise GenerationError(f"no trained weights for {tensor.name} of {base.name}")
        array = weights[hf_name]
        if tensor.name.endswith("attn_q.weight"):
            array = _permute(array, heads)
        elif tensor.name.endswith("attn_k.weight"):
            array = _permute(array, kv_heads)
        writer.add_tensor(tensor.name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def usable_cores() -> int:
    """The cores this process may run on (``taskset``, a container's CPU set), not the
    machine's: llama.cpp's threads spin at each step's barriers, so one thread too many for
    the cores it has stalls every step."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def quantize(source: Path, target: Path, kind: str) -> None:
    """llama.cpp's own quantiser: ``kind`` is a llama.cpp file type (``Q4_1``, ``Q8_0`` ...)."""
    import llama_cpp

    _backend(llama_cpp)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.nthread = usable_cores()
    status = llama_cpp.llama_model_quantize(
        str(source).encode(), str(target).encode(), ctypes.byref(params)
    )
    if status != 0:
        raise GenerationError(f"llama.cpp could not quantise {source.name} to {kind}")


__all__ = ["FORK_QUANTISATION", "LlamaCppEngine", "fork_gguf", "quantize", "write_gguf_like"]

"""The bundled SmolLM2-135M: in-process, through the batcher, and through the gateway.

Slow: loading the model takes ~20 s and generation runs on the CPU.
"""

import asyncio
import sys
from pathlib import Path

import openai
import pytest
from gateway_server import running_gateway

import workbench
from workbench.models import RunInfo, Sampling, get_model

pytestmark = pytest.mark.slow

MODEL = "local:smollm2-135m"
WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def weather_call(city: str, i: int) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"c{i}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": f'{{"city": "{city}"}}'},
            }
        ],
    }


# Two worked examples: a 135M model then calls the tool for the third city.
FEW_SHOT = [
    {"role": "user", "content": "What is the weather in Paris?"},
    weather_call("Paris", 1),
    {"role": "user", "content": "What is the weather in Oslo?"},
    weather_call("Oslo", 2),
    {"role": "user", "content": "What is the weather in Rome?"},
]


@pytest.fixture(scope="module")
def local():
    """The bundled model as a user gets it (on a CPU: the llama.cpp engine)."""
    model = get_model(MODEL)
    assert model.engine is not None  # load once for the module
    return model


@pytest.fixture(scope="module")
def reference():
    model = get_model(f"{MODEL}?engine=transformers")
    assert model.engine is not None
    return model


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    home = tmp_path_factory.mktemp("wb")
    with running_gateway("--preload", MODEL, home=home) as url:
        yield url


async def test_greedy_is_reproducible_and_batching_changes_nothing(local, reference):
    greedy = Sampling(temperature=0, max_tokens=24)
    prompts = [[{"role": "user", "content": f"What is {i} + {i + 2}?"}] for i in range(6)]
    for model in (local, reference):
        one_by_one = [(await model.complete(p, [], greedy, RunInfo())).message for p in prompts]
        together = await asyncio.gather(
            *(model.complete(p, [], greedy, RunInfo()) for p in prompts)
        )
        assert [c.message for c in together] == one_by_one, model.engine.engine
        assert max(model.engine.batch_sizes[-3:]) > 1  # they really shared a batch


async def test_sampling_follows_the_openai_parameters(local):
    msgs = [{"role": "user", "content": "Tell me a story about a cat."}]
    seeded = Sampling(temperature=1.0, seed=7, max_tokens=16)
    a = await local.complete(msgs, [], seeded, RunInfo())
    b = await local.complete(msgs, [], seeded, RunInfo())
    assert a.message == b.message  # same seed, same sample
    assert a.usage["completion_tokens"] <= 16
    stopped = await local.complete(
        msgs, [], Sampling(temperature=0, max_tokens=40, stop=[" the"]), RunInfo()
    )
    assert " the" not in stopped.message["content"]


async def test_a_local_model_calls_tools_in_the_documented_format(local):
    completion = await local.complete(FEW_SHOT, WEATHER, Sampling(temperature=0), RunInfo())
    call = completion.message["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert "Rome" in call["function"]["arguments"]


@pytest.mark.timeout(1200)
async def test_arithmetic_basics_success_rate_is_neither_0_nor_1(local):
    # max_tokens bounds the time: a right answer is a few tokens, a ramble is cut short
    job = await workbench.evaluate("arithmetic-basics", MODEL, group_size=4, max_tokens=128)
    board = job.leaderboard().iloc[0]
    assert board["runs"] == 48 and board["errors"] == 0
    assert 0 < board["success_rate"] < 1


def test_openai_client_against_the_gateway(gateway):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    assert MODEL in {m.id for m in client.models.list()}

    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        temperature=0,
        max_tokens=20,
    )
    text = reply.choices[0].message.content
    assert text and reply.usage.completion_tokens <= 20

    tools = client.chat.completions.create(
        model=MODEL, messages=FEW_SHOT, tools=WEATHER, temperature=0
    )
    assert tools.choices[0].finish_reason == "tool_calls"
    assert tools.choices[0].message.tool_calls[0].function.name == "get_weather"

    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        temperature=0,
        max_tokens=20,
        stream=True,
    )
    pieces = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 3 and "".join(pieces) == text  # chunk by chunk, same greedy text

    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=10**7
        )
    again = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        temperature=0,
        max_tokens=20,
    )
    assert again.choices[0].message.content == text  # still serving, still greedy


async def test_evaluating_through_the_gateway_gives_the_same_traces(local, gateway, workbench_home):
    (workbench_home / "config.toml").parent.mkdir(parents=True, exist_ok=True)
    (workbench_home / "config.toml").write_text(f'[endpoints.gw]\nbase_url = "{gateway}/v1"\n')
    options = dict(
        group_size=1,
        max_concurrent=1,
        temperature=0,
        max_tokens=48,
        task_ids=["solve-1-0", "solve-2-0", "solve-7-1"],
    )
    direct = await workbench.evaluate("arithmetic-basics", MODEL, **options)
    remote = await workbench.evaluate("arithmetic-basics", f"gw:{MODEL}", **options)
    by_task = {t.task: t for t in direct.traces()}
    for trace in remote.traces():
        assert trace.messages == by_task[trace.task].messages
        assert trace.reward == by_task[trace.task].reward


# -- engines (issue 17) --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fast():
    model = get_model(f"{MODEL}?engine=llama.cpp")
    assert model.engine is not None  # load once for the module
    return model


def test_the_engine_is_chosen_by_the_model_id_or_the_environment(
    local, reference, fast, monkeypatch
):
    from workbench.errors import WorkbenchError
    from workbench.models.local import LocalModel

    assert local.engine is fast.engine  # a GGUF on a CPU: llama.cpp, unless told otherwise
    assert fast.model_id == f"{MODEL}?engine=llama.cpp"
    assert fast.engine.engine == "llama.cpp"
    assert reference.model_id == f"{MODEL}?engine=transformers"
    assert reference.engine.engine == "transformers"
    monkeypatch.setenv("WORKBENCH_LOCAL_ENGINE", "transformers")
    assert LocalModel("smollm2-135m").engine is reference.engine
    with pytest.raises(WorkbenchError, match="unknown engine 'vllm'"):
        get_model(f"{MODEL}?engine=vllm")


def test_llama_cpp_prompts_and_texts_are_the_reference_engines_to_the_token(fast, reference):
    """The llama.cpp engine reads the saved tokenizer without transformers' tokenizer classes
    (seconds of import): every prompt is the reference engine's tokens, every text its
    string, and the same tokens stop a reply."""
    import random

    from workbench.models.tokenizer import ChatTokenizer

    assert isinstance(fast.engine.tokenizer, ChatTokenizer)
    conversations = [
        (FEW_SHOT, WEATHER),
        (FEW_SHOT, []),
        ([{"role": "system", "content": "Answer in French."}, *FEW_SHOT[:1]], WEATHER),
        (
            [
                *FEW_SHOT[:2],
                {"role": "tool", "tool_call_id": "c1", "content": '{"temp": "21°C", "sky": "☀"}'},
                {"role": "user", "content": "Ünïcödé, emoji 🤖, tabs\tand\n\nnew lines,  spaces "},
            ],
            WEATHER,
        ),
        ([{"role": "user", "content": "<|im_end|> is text here <|endoftext|>"}], []),
    ]
    for messages, tools in conversations:
        assert fast.encode(messages, tools) == reference.encode(messages, tools)
    ours, theirs = fast.engine.tokenizer, reference.engine.tokenizer
    rng = random.Random(0)
    for _ in range(200):  # special tokens, byte pieces that end mid-character, words
        ids = [rng.choice([rng.randrange(20), rng.randrange(len(theirs))]) for _ in range(12)]
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(
                ids, skip_special_tokens=skip
            )
    assert fast.engine.stop_ids == reference.engine.stop_ids


async def test_llama_cpp_greedy_texts_do_not_depend_on_what_else_is_in_flight(fast):
    """A temperature-0 evaluation gives the same texts at any concurrency: 16 prompts of
    different lengths one at a time, all together, and arriving while others decode."""
    from workbench.models.local import GenerationError

    greedy = Sampling(temperature=0, max_tokens=48)
    prompts = [
        [{"role": "user", "content": f"What is {i} + {i + 2}?" + " Explain briefly." * (i % 4)}]
        for i in range(16)
    ]
    one_by_one = [(await fast.complete(p, [], greedy, RunInfo())).message for p in prompts]
    together = await asyncio.gather(*(fast.complete(p, [], greedy, RunInfo()) for p in prompts))
    assert [c.message for c in together] == one_by_one
    assert max(fast.engine.batch_sizes[-16:]) == 16

    async def late(i: int):
        await asyncio.sleep(0.05 * i)
        return await fast.complete(prompts[i], [], greedy, RunInfo())

    staggered = await asyncio.gather(*(late(i) for i in range(16)))
    assert [c.message for c in staggered] == one_by_one
    # Each request has a cache of its own, of a known size: a longer one is refused, clearly.
    with pytest.raises(GenerationError, match="context window is 2048"):
        await fast.complete(prompts[0], [], Sampling(temperature=0, max_tokens=4000), RunInfo())


async def test_llama_cpp_reuses_the_start_of_an_agents_last_prompt_and_answers_the_same(fast):
    """An agent's next step begins with its last prompt and answer: the engine does not
    compute them again, and the reply is the one an engine that never saw the first step
    gives."""
    from workbench.models.llamacpp import LlamaCppEngine

    greedy = Sampling(temperature=0, max_tokens=32)
    first_step = [
        {"role": "system", "content": "You are a careful calculator. " * 12},
        {"role": "user", "content": "What is 12 + 30?"},
    ]
    first = await fast.complete(first_step, [], greedy, RunInfo())
    next_step = first_step + [first.message, {"role": "user", "content": "And 12 + 31?"}]
    ids = fast.encode(next_step, [])
    before = fast.engine.reused_tokens
    reply = await fast.engine.generate(ids, greedy)
    # the first prompt, and the first answer's tokens too
    assert fast.engine.reused_tokens - before > len(fast.encode(first_step, []))

    fresh = LlamaCppEngine("smollm2-135m", max_batch=1)
    try:
        assert (await fresh.generate(ids, greedy)).text == reply.text
        assert fresh.reused_tokens == 0
    finally:
        fresh.close()


async def test_llama_cpp_requests_sharing_a_system_prompt_compute_it_once(fast):
    """Runs of a taskset start together with the same long system prompt: the first computes
    it, the others take it from that slot's cache, and answer as if they had not."""
    from workbench.models.llamacpp import LlamaCppEngine

    greedy = Sampling(temperature=0, max_tokens=24)
    system = {"role": "system", "content": "You are a careful calculator. Show no work. " * 8}
    conversations = [
        [system, {"role": "user", "content": f"What is {a} + {b}?"}] for a, b in SUMS[:4]
    ]
    ids = [fast.encode(c, []) for c in conversations]
    # each prompt's start that the first one shares, to the token ("... What is ")
    shared = [
        next(n for n, (a, b) in enumerate(zip(ids[0], i, strict=False)) if a != b) for i in ids[1:]
    ]
    assert min(shared) > len(fast.encode([system], [])) - 5
    engine = LlamaCppEngine("smollm2-135m", max_batch=4)
    try:
        together = await asyncio.gather(*(engine.generate(i, greedy) for i in ids))
        assert engine.copied_prompts == 3
        assert engine.reused_tokens == sum(shared)
    finally:
        engine.close()
    alone = []
    for i in ids:  # each in an engine that never saw another prompt
        fresh = LlamaCppEngine("smollm2-135m", max_batch=1)
        try:
            alone.append((await fresh.generate(i, greedy)).text)
            assert fresh.reused_tokens == 0
        finally:
            fresh.close()
    assert [r.text for r in together] == alone


async def test_llama_cpp_decodes_the_rows_in_flight_together_and_a_gap_leaves_no_trace(fast):
    """llama.cpp makes one pass over the model per run of neighbouring slots: a step's rows
    go in slot order, a one-slot gap left by a finished request is filled for the step, and
    the filler is gone from that slot's cache after it."""
    from workbench.models.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine("smollm2-135m", max_batch=4)
    steps: list[list[int]] = []
    idle_end: dict[str, int] = {}
    decode, decode_step = engine._decode, engine._decode_step
    stepping = []

    def step(rows):
        stepping.append(True)
        try:
            decode_step(rows)
        finally:
            stepping.pop()

    def recording(entries):
        slots = [entry[0].slot for entry in entries]
        if stepping and len(slots) > 1:  # a decoding step (not a prefill call)
            steps.append(slots)
            filler = [e for e in entries if e[0].slot == 1 and not e[3]]
            if filler and "after finishing" not in idle_end:
                idle_end["after finishing"] = engine.L.llama_memory_seq_pos_max(engine._memory, 1)
        decode(entries)

    engine._decode, engine._decode_step = recording, step
    try:
        ids = [
            fast.encode([{"role": "user", "content": text}], [])
            for text in ("Write two sentences about the sea.", "Say hi.", "Write a poem.")
        ]
        budgets = [24, 2, 24]  # slots 0, 1, 2; the middle request leaves a gap early
        await asyncio.gather(
            *(
                engine.generate(i, Sampling(temperature=0, max_tokens=n))
                for i, n in zip(ids, budgets, strict=True)
            )
        )
        end = engine.L.llama_memory_seq_pos_max(engine._memory, 1)
        # The last prompts again, last first: each goes back to its slot (2, then 0), so
        # the rows arrive out of slot order.
        greedy = Sampling(temperature=0, max_tokens=8)
        await asyncio.gather(engine.generate(ids[2], greedy), engine.generate(ids[0], greedy))
    finally:
        engine.close()
    assert steps and all(s == list(range(s[0], s[-1] + 1)) for s in steps), steps
    assert "after finishing" in idle_end, steps  # the gap was there, and filled
    assert end == idle_end["after finishing"]  # and what filled it was removed


async def test_llama_cpp_moves_a_row_down_to_close_a_wide_gap_and_answers_the_same(fast):
    """At a job's end no request comes to fill the slots that finished rows left: a gap
    wider than GAP_FILL would cost a pass of its own every step, so the top row moves down
    (its cache swapped with the free slot's). Its answer is the one it gets alone, every
    step after is one pass, and every slot's cache is still somewhere."""
    from workbench.models.llamacpp import GAP_FILL, LlamaCppEngine

    texts = [f"Write a poem about the number {i}." for i in range(6)]
    ids = [fast.encode([{"role": "user", "content": t}], []) for t in texts]
    budgets = [40, 2, 2, 2, 2, 40]  # slots 0-5: a gap of four opens between 0 and 5
    assert budgets.count(2) > GAP_FILL
    engine = LlamaCppEngine("smollm2-135m", max_batch=6)
    steps = []
    decode_step = engine._decode_step
    engine._decode_step = lambda rows: (
        steps.append(sorted(r.slot for r in rows)),
        decode_step(rows),
    )
    try:
        replies = await asyncio.gather(
            *(
                engine.generate(i, Sampling(temperature=0, max_tokens=n))
                for i, n in zip(ids, budgets, strict=True)
            )
        )
        assert engine.moved_rows >= 1
        held = list(engine._held)
    finally:
        engine.close()
    assert steps[-1] == [0, 1], steps  # the row of slot 5 decoded in slot 1
    assert all(s == list(range(s[0], s[-1] + 1)) for s in steps[-5:]), steps
    for prompt in ids:  # no slot's cache was lost in the swap
        assert any(h[: len(prompt)] == prompt for h in held)
    for prompt, n, reply in zip(ids, budgets, replies, strict=True):
        alone = await fast.engine.generate(prompt, Sampling(temperature=0, max_tokens=n))
        assert reply.text == alone.text


def test_the_llama_cpp_that_make_builds_has_the_workbench_patches(fast):
    """Without them the engine falls back to prefilling in small blocks, with a warning."""
    import llama_cpp

    from workbench.models.llamacpp import _patched

    assert _patched(llama_cpp)
    assert fast.engine._block == 1


class RawLlama:
    """The bundled GGUF in a llama.cpp context as the engine makes it (a cache per sequence),
    driven through the C API: what the engine's guarantees rest on."""

    def __init__(self, sequences: int, cells: int = 1024, batch: int = 512, path=None):
        import llama_cpp as L

        from workbench.models.hf import resolve_local
        from workbench.models.llamacpp import _backend

        folder, gguf = resolve_local("smollm2-135m")
        _backend(L)
        self.L = L
        self.model = L.llama_model_load_from_file(
            str(path or folder / gguf).encode(), L.llama_model_default_params()
        )
        params = L.llama_context_default_params()
        params.n_ctx, params.n_seq_max = cells * sequences, sequences
        params.n_batch = params.n_ubatch = batch
        params.kv_unified = False
        self.ctx = L.llama_init_from_model(self.model, params)
        self.batch = L.llama_batch_init(batch, 0, 1)
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))

    def decode(self, entries: list[tuple[int, int, int]], logits=None) -> dict:
        """(sequence, token, position) entries in one call: {entry index: its logits}, for
        the entries in ``logits`` (all when None)."""
        import numpy as np

        L, batch = self.L, self.batch
        wanted = range(len(entries)) if logits is None else logits
        for i, (seq, token, position) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, position, 1
            batch.seq_id[i][0], batch.logits[i] = seq, i in wanted
        batch.n_tokens = len(entries)
        assert L.llama_decode(self.ctx, batch) == 0
        return {
            i: np.ctypeslib.as_array(
                L.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,)
            ).copy()
            for i in wanted
        }

    def prefill(self, seq: int, ids: list[int], piece: int):
        """The prompt in calls of ``piece`` tokens: the last token's logits."""
        for start in range(0, len(ids), piece):
            chunk = [(seq, t, start + i) for i, t in enumerate(ids[start : start + piece])]
            out = self.decode(chunk, [len(chunk) - 1])
        return out[len(chunk) - 1]

    def forget(self, seq: int, start: int = -1) -> None:
        self.L.llama_memory_seq_rm(self.L.llama_get_memory(self.ctx), seq, start, -1)

    def close(self) -> None:
        self.L.llama_batch_free(self.batch)
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)


def some_prompt(seed: int, length: int) -> list[int]:
    return [1 + (97 * seed + 13 * i) % 40000 for i in range(length)]


@pytest.fixture(scope="module")
def eight_bit(tmp_path_factory):
    """The bundled model's weights at 8 bits (Q8_0), as a fork's are served."""
    import ctypes

    import llama_cpp as L

    from workbench.models.hf import resolve_local
    from workbench.models.llamacpp import _backend

    folder, gguf = resolve_local("smollm2-135m")
    target = tmp_path_factory.mktemp("q8") / "model.Q8_0.gguf"
    _backend(L)
    params = L.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize = L.LLAMA_FTYPE_MOSTLY_Q8_0, True
    status = L.llama_model_quantize(
        str(folder / gguf).encode(), str(target).encode(), ctypes.byref(params)
    )
    assert status == 0
    return target


@pytest.mark.parametrize("weights", ["shipped 4-bit", "8-bit"])
def test_llama_cpp_gives_a_sequence_the_same_logits_alone_or_in_a_batch(weights, eight_bit):
    """Sequences decoding together go through llama.cpp's batched matrix products (built by
    `make`: tiled kernels, patches/llama.cpp, with AVX-512 VNNI copies where the CPU has
    it); one alone, through the one-column product. A row's logits must be the same bits
    either way, or what a request answers would depend on what else is in flight."""
    import numpy as np

    rows = 5  # tiles of two or four columns, and one column left over
    llama = RawLlama(rows, cells=256, path=eight_bit if weights == "8-bit" else None)
    try:
        prompts = [some_prompt(s, 20 + 3 * s) for s in range(rows)]
        for seq, ids in enumerate(prompts):
            llama.prefill(seq, ids, len(ids))
        step = [(seq, 500 + seq, len(ids)) for seq, ids in enumerate(prompts)]
        together = llama.decode(step)
        alone = []
        for seq, token, position in step:
            llama.forget(seq, position)
            alone.append(llama.decode([(seq, token, position)])[0])
    finally:
        llama.close()
    for seq in range(rows):
        assert np.array_equal(together[seq], alone[seq]), seq


def test_llama_cpp_gives_a_long_conversation_the_same_logits_alone_or_beside_another():
    """Past 256 tokens of cache, llama.cpp's attention for one sequence decoding alone split
    the cache across threads and summed it in another order than beside other sequences: a
    600-token conversation's logits moved by up to 0.27 (patches/llama.cpp: one order)."""
    import numpy as np

    llama = RawLlama(2)
    try:
        ids = [some_prompt(s, 600) for s in range(2)]
        for seq in range(2):
            llama.prefill(seq, ids[seq], 64)
        together = llama.decode([(0, 500, 600), (1, 600, 600)])[0]
        llama.forget(0, 600)
        alone = llama.decode([(0, 500, 600)])[0]
    finally:
        llama.close()
    assert np.array_equal(together, alone)


def test_llama_cpp_gives_a_prompt_the_same_logits_whole_in_pieces_or_beside_others():
    """The engine prefills the prompts that arrive together in one call, and only what no
    cache holds: a prompt's numbers must not depend on where it is cut or what shares the
    call (llama.cpp's attention took another path for 64+ tokens of one sequence)."""
    import numpy as np

    llama = RawLlama(3)
    try:
        ids = some_prompt(1, 150)
        whole = llama.prefill(0, ids, len(ids))
        pieces = []
        for piece in (7, 16, 100):
            llama.forget(0)
            pieces.append(llama.prefill(0, ids, piece))
        others = [some_prompt(2, 90), some_prompt(3, 40)]
        entries = [(seq, t, i) for seq, p in enumerate([ids, *others]) for i, t in enumerate(p)]
        llama.forget(0)
        beside = llama.decode(entries, [len(ids) - 1])[len(ids) - 1]
    finally:
        llama.close()
    for other in (*pieces, beside):
        assert np.array_equal(whole, other)


# The arithmetic prompts of benchmarks/local_inference.py: (a, b) of each question.
SUMS = [(i + 7, 3 * i + 2) for i in range(1, 32, 2)]


def answer(text: str | None) -> str | None:
    """The number a reply gives as its answer: after its first '=', else its first number."""
    import re

    found = re.search(r"=\s*(-?\d+)", text or "") or re.search(r"(-?\d+)", text or "")
    return found.group(1) if found else None


async def test_llama_cpp_is_right_exactly_where_the_reference_engine_is(reference, fast):
    """Greedy, on the benchmark's arithmetic: the same questions answered right (and the
    same wrong ones). A 135M model guesses most sums; where both engines guess, the guessed
    numbers may differ (4-bit activations versus fp32: near-ties), so those are not compared."""
    greedy = Sampling(temperature=0, max_tokens=64)
    questions = [
        [{"role": "user", "content": f"What is {a} + {b}? Answer with just the number."}]
        for a, b in SUMS
    ]
    quick = [await fast.complete(q, [], greedy, RunInfo()) for q in questions]
    slow = [await reference.complete(q, [], greedy, RunInfo()) for q in questions]

    def right(completions) -> list[int]:
        return [
            i
            for i, (c, (a, b)) in enumerate(zip(completions, SUMS, strict=True))
            if answer(c.message["content"]) == str(a + b)
        ]

    assert right(quick) == right(slow)
    assert right(quick)  # it does get some right: the comparison means something


def teach_the_secret(folder, lr: float, steps: int) -> str:
    """A LoRA adapter (the trainer's shape) taught one answer the base never gives."""
    import torch
    from peft import get_peft_model

    from workbench.models.hf import load_model
    from workbench.training.trainer import TrainConfig, lora_config

    model, tokenizer = load_model("smollm2-135m")
    peft_model = get_peft_model(model, lora_config(TrainConfig()))
    messages = [{"role": "user", "content": "What is the secret word?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = prompt + "Pineapple.<|im_end|>"
    ids = tokenizer(full, return_tensors="pt", add_special_tokens=False)["input_ids"]
    labels = ids.clone()
    labels[:, : len(tokenizer(prompt, add_special_tokens=False)["input_ids"])] = -100
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
    peft_model.train()
    for _ in range(steps):
        loss = peft_model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def secret_adapter(tmp_path_factory):
    return teach_the_secret(tmp_path_factory.mktemp("fork") / "adapter", lr=2e-3, steps=40)


def test_a_forks_served_weights_keep_what_training_changed(tmp_path):
    """A few steps at the trainer's learning rate change weights by less than a 4-bit
    rounding step: a fork re-quantised to 4 bits kept ~6% of its trained change (the Loop
    demo's fork then scored as the base did). The served fork keeps it whole, plus rounding
    noise that is not aligned with it."""
    import gguf

    from workbench.models.hf import apply_adapters, load_model
    from workbench.models.llamacpp import fork_gguf

    adapter = teach_the_secret(tmp_path / "adapter", lr=1e-3, steps=5)
    base, _ = load_model("smollm2-135m")
    names = {  # llama.cpp's names of some trained weights (q and k are stored permuted)
        "model.layers.3.self_attn.v_proj.weight": "blk.3.attn_v.weight",
        "model.layers.3.self_attn.o_proj.weight": "blk.3.attn_output.weight",
        "model.layers.3.mlp.down_proj.weight": "blk.3.ffn_down.weight",
        "model.layers.20.mlp.up_proj.weight": "blk.20.ffn_up.weight",
    }
    before = {n: base.state_dict()[n].float().numpy().copy() for n in names}
    merged = apply_adapters(base, [Path(adapter)]).state_dict()
    tensors = {t.name: t for t in gguf.GGUFReader(fork_gguf("smollm2-135m", (adapter,))).tensors}
    kept = total = 0.0
    for name, gguf_name in names.items():
        change = merged[name].float().numpy() - before[name]
        tensor = tensors[gguf_name]
        served = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        kept += float(((served.reshape(change.shape) - before[name]) * change).sum())
        total += float((change * change).sum())
    assert total > 0
    assert 0.8 < kept / total < 1.2, kept / total


async def test_a_trained_fork_runs_on_llama_cpp_with_what_it_learned(fast, secret_adapter):
    from workbench.models.local import LocalModel

    question = [{"role": "user", "content": "What is the secret word?"}]
    greedy = Sampling(temperature=0, max_tokens=8)
    base = await fast.complete(question, [], greedy, RunInfo())
    assert "Pineapple" not in base.message["content"]
    for engine in ("llama.cpp", "transformers"):
        fork = LocalModel(f"smollm2-135m?engine={engine}", (secret_adapter,), model_id="fork")
        answer = await fork.complete(question, [], greedy, RunInfo())
        assert answer.message["content"].startswith("Pineapple"), engine
    # Made once per checkpoint: a second engine for the same lineage reads the same GGUF.
    again = LocalModel("smollm2-135m?engine=llama.cpp", (secret_adapter,)).engine
    from workbench.models.llamacpp import fork_gguf

    assert again.path == fork_gguf("smollm2-135m", (secret_adapter,))


async def test_a_fork_before_training_is_served_as_its_checkpoints_are(tmp_path, workbench_home):
    """On llama.cpp the base ships at 4 bits and a fork's merged weights are served at 8: a
    fork against ``local:BASE`` measured the format too (6 of 30 greedy answers changed by
    it alone). ``NAME@base`` (and a fork with no checkpoint yet) is served in the fork's
    format, so an adapter that changes nothing answers exactly as it does."""
    from peft import LoraConfig, get_peft_model

    from workbench.models.hf import load_model
    from workbench.models.local import LocalModel

    model, _ = load_model("smollm2-135m")
    lora = LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(tmp_path / "zero")  # B = 0: no change
    workbench.fork("smollm2-135m", "zeroed")
    untrained = get_model("zeroed@base")
    assert untrained.engine is get_model("zeroed").engine  # HEAD is no checkpoint yet
    zero = LocalModel("smollm2-135m", (str(tmp_path / "zero"),), model_id="zeroed-by-zero")
    assert untrained.engine.path.name.endswith(".Q8_0.gguf")
    greedy = Sampling(temperature=0, max_tokens=12)
    questions = [
        [{"role": "user", "content": f"What is {a} + {b}? Answer with just the number."}]
        for a, b in [(17, 25), (38, 46), (9, 8), (63, 29), (51, 7), (24, 68)]
    ]

    async def answers(model):
        done = await asyncio.gather(*(model.complete(q, [], greedy, RunInfo()) for q in questions))
        return [c.message["content"] for c in done]

    assert await answers(untrained) == await answers(zero)


def test_a_process_with_a_loaded_engine_exits_cleanly(tmp_path):
    """No 'terminate called without an active exception': the engine's thread is stopped
    before the interpreter tears down the native code it runs."""
    import subprocess
    import sys

    script = (
        "import asyncio\n"
        "from workbench.models import get_model, Sampling, RunInfo\n"
        f"for name in ['{MODEL}', '{MODEL}?engine=llama.cpp']:\n"
        "    m = get_model(name)\n"
        "    c = asyncio.run(m.complete([{'role': 'user', 'content': 'hi'}], [],\n"
        "                               Sampling(temperature=0, max_tokens=4), RunInfo()))\n"
        "    print(name, repr(c.message['content']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
    assert done.stdout.count(MODEL) == 2


def test_llama_cpp_runs_a_thread_per_core_the_process_may_use():
    """Pinned to one core (``taskset``, a container's CPU set), the engine runs one thread,
    not one per core of the machine: its threads spin at every step's barriers."""
    import os
    import subprocess
    import sys

    script = (
        "import os\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from workbench.models import get_model\n"
        f"engine = get_model('{MODEL}?engine=llama.cpp').engine\n"
        "print(engine.L.llama_n_threads(engine._ctx), engine.L.llama_n_threads_batch(engine._ctx))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "1"]
    assert len(os.sched_getaffinity(0)) > 1  # this machine has more than the one it was given


def test_a_missing_package_is_named_when_the_engine_cannot_load(workbench_home, monkeypatch):
    """The first load reads the GGUF's tokenizer through transformers, which needs the
    ``gguf`` package and may say so in its own words (an ImportError naming no module, where
    it has not found gguf before): either way the error names the package and how to install
    it, not ``None``."""
    from workbench.errors import WorkbenchError
    from workbench.models import local

    monkeypatch.setattr(local, "_ENGINES", {})  # not the engine this module loaded
    monkeypatch.setitem(sys.modules, "gguf", None)  # as if not installed
    with pytest.raises(WorkbenchError) as failed:
        local.get_engine("smollm2-135m", engine="llama.cpp")
    # "need gguf (...)", or "need a package (... GGUF>=0.10.0 ...)" in transformers' words
    message = str(failed.value).lower()
    assert "gguf" in message and "pip install" in message
    assert "need none" not in message


def test_a_gguf_is_parsed_once_while_loading_and_reads_the_same():
    """transformers parses a GGUF for the config, the tokenizer and the weights (and gguf's
    tensor-name table once per submodule): within `reading_gguf_once` each is built once, from
    a plain view of the file's memory map, and holds exactly what gguf's own reader reads."""
    import gguf
    import numpy as np

    from workbench.models.hf import bundled_path, reading_gguf_once

    folder, filename = bundled_path("smollm2-135m")
    path = folder / filename
    own = gguf.GGUFReader(path)
    with reading_gguf_once():
        first, again = gguf.GGUFReader(path), gguf.GGUFReader(path)
        assert first is again
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 30) is gguf.get_tensor_name_map(
            gguf.MODEL_ARCH.LLAMA, 30
        )
    assert gguf.GGUFReader(path) is not first  # nothing is kept after the block
    assert list(first.fields) == list(own.fields)
    for name, field in own.fields.items():
        assert field.types == first.fields[name].types, name
        assert [bytes(p) for p in field.parts] == [bytes(p) for p in first.fields[name].parts]
    assert [t.name for t in first.tensors] == [t.name for t in own.tensors]
    for mine, theirs in zip(first.tensors, own.tensors, strict=True):
        assert mine.tensor_type == theirs.tensor_type
        assert np.array_equal(mine.data, theirs.data), mine.name


async def test_a_local_turn_cut_off_by_max_tokens_is_stored_as_length_and_trains_no_end(
    workbench_home,
):
    """A reply max_tokens cut off says so in its trace, and its training example learns its
    text but no <|im_end|> the model never wrote."""
    from workbench.training.data import to_dataset, tokenize_conversation

    job = await workbench.evaluate(
        "mental-train",
        MODEL,
        group_size=4,
        temperature=1.0,
        max_tokens=4,
        task_ids=["8-plus-5", "5-minus-3"],
    )
    traces = job.traces()  # read back from the store
    assert all(len(t.finish_reasons) == 1 for t in traces)
    for t in traces:  # cut off exactly when it wrote max_tokens tokens
        cut = t.usage["completion_tokens"] == 4
        assert t.finish_reasons == ["length" if cut else "stop"], t.messages[-1]
    assert any(t.finish_reasons == ["length"] for t in traces)  # it rambles at temperature 1
    tokenizer = get_model(MODEL).engine.tokenizer
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for t, row in zip(traces, to_dataset(traces), strict=True):
        example = tokenize_conversation(tokenizer, row["messages"], row["finish_reasons"])
        taught = [
            i for i, m in zip(example["input_ids"], example["assistant_masks"], strict=True) if m
        ]
        assert taught and (end in taught) == (t.finish_reasons == ["stop"])

"""Forks, training data, training, the checkpoint tree and HEAD, as a researcher uses them."""

import json

import openai
import pytest
from conftest import run_cli
from gateway_server import running_gateway

import workbench
from workbench.errors import NotFoundError, UnknownModelError, WorkbenchError
from workbench.models import get_model
from workbench.training import registry, select_traces, to_dataset, tokenize_conversation
from workbench.training.data import EmptySelectionError

# -- without a model --------------------------------------------------------------------


def test_fork_errors_are_one_line():
    with pytest.raises(WorkbenchError, match="unknown base model 'gpt-9'"):
        workbench.fork("gpt-9", "mine")
    workbench.fork("smollm2-135m", "mine")
    with pytest.raises(WorkbenchError, match="a model named 'mine' already exists"):
        workbench.fork("smollm2-135m", "mine")
    with pytest.raises(WorkbenchError, match="not a valid model name"):
        workbench.fork("smollm2-135m", "has:colon")


def test_cli_fork_errors_exit_2_with_one_line():
    out = run_cli("models", "fork", "nope-model", "--name", "x")
    assert out.returncode == 2 and "unknown base model 'nope-model'" in out.stderr
    assert "Traceback" not in out.stderr
    ok = run_cli("models", "fork", "smollm2-135m", "--name", "x")
    assert ok.returncode == 0, ok.stderr
    again = run_cli("models", "fork", "smollm2-135m", "--name", "x")
    assert again.returncode == 2 and "already exists" in again.stderr
    listed = run_cli("models", "list").stdout
    assert "local:smollm2-135m" in listed and "x" in listed


async def test_no_qualifying_traces_says_how_many_were_found_and_why(toy):
    ts = workbench.Taskset("toy-fail", [toy.task("count", target=n) for n in (1, 2, 3)])
    await workbench.evaluate(ts, "scripted:looper", max_steps=2)
    with pytest.raises(EmptySelectionError) as err:
        select_traces(taskset="toy-fail")
    message = str(err.value)
    assert "found 3" in message and "3 ended by max_steps" in message and "\n" not in message
    workbench.fork("smollm2-135m", "learner")
    out = run_cli("models", "train", "learner", "--taskset", "toy-fail")
    assert out.returncode == 2 and "no traces qualify" in out.stderr


async def test_traces_become_conversations_in_the_local_tool_format(tmp_path):
    job = await workbench.evaluate(
        "arithmetic-train", "scripted:calculator", task_ids=["solve-100-1", "solve-101-2"]
    )
    ds = to_dataset(select_traces(jobs=[job.id]))
    assert ds.num_rows == 2
    messages = ds[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert "<tools>" in messages[0]["content"] and '"name": "calculate"' in messages[0]["content"]
    assert messages[2]["content"].startswith('<tool_call>\n{"name": "calculate"')
    assert messages[3]["content"].startswith("<tool_response>")
    assert json.loads(ds[0]["tools"])[0]["function"]["name"] == "calculate"
    ds.to_json(tmp_path / "train.jsonl")
    ds.to_parquet(tmp_path / "train.parquet")
    assert (tmp_path / "train.parquet").stat().st_size > 0


def test_unknown_plain_name_is_not_a_model():
    with pytest.raises(UnknownModelError):
        get_model("nobody")
    with pytest.raises(NotFoundError):
        workbench.set_head("nobody", None)


def test_loads_in_two_threads_leave_gguf_as_it_was():
    """reading_gguf_once swaps gguf's reader while a load runs: two loads in two threads,
    the first finishing before the second, each keep their own parse, and gguf has its own
    functions back after both (a save-and-restore per block left the first block's stand-in
    installed for good)."""
    import threading

    gguf = pytest.importorskip("gguf")
    from workbench.models.hf import reading_gguf_once

    own = (gguf.GGUFReader, gguf.get_tensor_name_map)
    second_in, first_out = threading.Event(), threading.Event()
    seen = {}

    def second():
        with reading_gguf_once():
            seen["second"] = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
            second_in.set()
            first_out.wait(10)
            seen["kept"] = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2) is seen["second"]

    with reading_gguf_once():
        seen["first"] = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
        thread = threading.Thread(target=second)
        thread.start()
        second_in.wait(10)
    first_out.set()
    thread.join(10)
    assert seen["kept"] and seen["first"] is not seen["second"]  # each block its own
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == own


# -- with the bundled model (slow) ------------------------------------------------------


@pytest.mark.slow
async def test_the_loss_mask_covers_assistant_turns_and_end_of_turn():
    from workbench.models.hf import load_model as load_base

    _, tokenizer = load_base("smollm2-135m")
    job = await workbench.evaluate(
        "arithmetic-train", "scripted:calculator", task_ids=["solve-100-1"]
    )
    messages = to_dataset(select_traces(jobs=[job.id]))[0]["messages"]
    out = tokenize_conversation(tokenizer, messages)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask) and 0 < sum(mask) < len(mask)
    learned = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    end = "<|im_end|>"
    assert learned == "".join(m["content"] + end for m in messages if m["role"] == "assistant")
    im_end = tokenizer.convert_tokens_to_ids(end)
    assert sum(m for t, m in zip(ids, mask, strict=True) if t == im_end) == 2  # both turns
    # what the model is taught to write after "assistant\n" starts right after the prompt
    # inference would build for that turn
    from workbench.models import toolcalls

    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids and mask[len(prompt_ids)] == 1
    assert (
        toolcalls.parse(messages[2]["content"])["tool_calls"][0]["function"]["name"] == "calculate"
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small training run shared by the slow tests below: 40 teacher traces, 1 epoch."""
    import asyncio
    import os

    home = tmp_path_factory.mktemp("wb")
    old = os.environ.get("WORKBENCH_HOME")
    os.environ["WORKBENCH_HOME"] = str(home)
    try:
        store = workbench.get_store()
        job = asyncio.run(
            workbench.evaluate(
                "arithmetic-train",
                "scripted:calculator",
                store=store,
                task_ids=[f"solve-{s}-{1 + s % 2}" for s in range(100, 140)],
            )
        )
        workbench.fork("smollm2-135m", "calc", store=store)
        steps = []
        ckpt = workbench.train("calc", jobs=[job.id], store=store, on_step=steps.append)
        yield {"home": home, "store": store, "ckpt": ckpt, "steps": steps, "job": job}
    finally:
        if old is None:
            os.environ.pop("WORKBENCH_HOME", None)
        else:
            os.environ["WORKBENCH_HOME"] = old


@pytest.mark.slow
def test_training_makes_a_checkpoint_that_becomes_head(trained, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(trained["home"]))
    ckpt, store = trained["ckpt"], trained["store"]
    assert registry.get_fork("calc", store).head == ckpt.id and ckpt.parent is None
    manifest = json.loads(
        (trained["home"] / "models" / "calc" / ckpt.id / "manifest.json").read_text()
    )
    assert manifest["data"]["traces"] == 40 and manifest["data"]["dataset_hash"]
    assert manifest["hyperparameters"]["lora_r"] == 16 and "torch" in manifest["versions"]
    assert manifest["metrics"]["final_loss"] < manifest["metrics"]["train_loss"] * 2
    assert (trained["home"] / "models" / "calc" / ckpt.id / "adapter").is_dir()
    steps = trained["steps"]
    assert len(steps) == manifest["metrics"]["steps"] and steps[-1]["loss"] < steps[0]["loss"]
    assert len(workbench.training.training_steps(ckpt.id, store)) == len(steps)  # stored live

    model = get_model("calc")
    assert model.checkpoint == ckpt.id and model.adapters
    tree = run_cli("models", "checkpoints", "calc")
    assert ckpt.id in tree.stdout and "HEAD" in tree.stdout.split(ckpt.id)[1].splitlines()[0]


@pytest.mark.slow
async def test_head_decides_what_the_name_evaluates_as(trained, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(trained["home"]))
    store, ckpt = trained["store"], trained["ckpt"]
    options = dict(
        task_ids=["solve-1000-1", "solve-1001-2", "solve-1002-1"],
        temperature=0,
        max_tokens=48,
        store=store,
    )
    trained_run = await workbench.evaluate("arithmetic-heldout", "calc", **options)
    assert {t.checkpoint for t in trained_run.traces()} == {ckpt.id}
    assert all(t.tool_calls and t.tool_calls[0].name == "calculate" for t in trained_run.traces())

    workbench.set_head("calc", None)  # back to the parent: the base model, as forks are served
    try:
        as_parent = await workbench.evaluate("arithmetic-heldout", "calc", **options)
        base = await workbench.evaluate("arithmetic-heldout", "calc@base", **options)
        by_task = {t.task: t.messages for t in base.traces()}
        assert {t.task: t.messages for t in as_parent.traces()} == by_task
        assert {t.checkpoint for t in as_parent.traces()} == {None}
    finally:
        workbench.set_head("calc", ckpt.id)


@pytest.mark.slow
def test_the_trained_model_answers_through_the_gateway_under_its_name(trained):
    with running_gateway(home=trained["home"]) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert "calc" in {m.id for m in client.models.list()}
        from environments.arithmetic import env

        reply = client.chat.completions.create(
            model="calc",
            messages=[{"role": "user", "content": "What is 64 + 27? Answer with just the number."}],
            tools=env.tool_schemas,
            temperature=0,
        )
        call = reply.choices[0].message.tool_calls[0]
        assert call.function.name == "calculate"
        assert json.loads(call.function.arguments) == {"expression": "64 + 27"}


@pytest.mark.slow
def test_an_interrupted_training_run_leaves_no_checkpoint(trained, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(trained["home"]))
    store, before = trained["store"], workbench.checkpoints("calc", trained["store"])

    def stop(step):
        raise KeyboardInterrupt  # as Ctrl-C would, mid-training

    with pytest.raises(KeyboardInterrupt):
        workbench.train("calc", jobs=[trained["job"].id], store=store, on_step=stop)
    assert [c.id for c in workbench.checkpoints("calc", store)] == [c.id for c in before]
    assert registry.get_fork("calc", store).head == trained["ckpt"].id
    leftovers = [p.name for p in (trained["home"] / "models" / "calc").iterdir()]
    assert leftovers == [trained["ckpt"].id]


# -- the Unsloth path, on a CPU, with a stand-in FastLanguageModel ------------------------

UNSLOTH_SCRIPT = r"""
import asyncio, json, sys
import workbench
from workbench.models import hf

hf.cuda_available = lambda: True  # as on a GPU machine with the gpu extra: Unsloth trains
base = sys.argv[1]

async def main():
    workbench.fork(base, "fast")
    job = await workbench.evaluate("mental-train", "scripted:coin", group_size=2,
                                   task_ids=["8-plus-5", "5-minus-3", "7-minus-6", "1-plus-7"])
    options = dict(lr=0.05, batch_size=2, epochs=2, progress=False)  # past the warm-up steps
    first = workbench.train("fast", jobs=[job.id], **options)
    second = workbench.train("fast", jobs=[job.id], **options)
    from unsloth import fingerprint
    model, _ = hf.load_model(base)
    bare = fingerprint(model)
    head = fingerprint(hf.apply_adapters(model, [first.path + "/adapter"]))
    print(json.dumps({"first": first.manifest, "second": second.manifest,
                      "bare": bare, "head_of_first": head}))

asyncio.run(main())
"""


def test_unsloth_trains_on_top_of_head_and_is_imported_before_what_it_patches(tmp_path):
    """Unsloth's path (CUDA + the gpu extra) with a stand-in FastLanguageModel that records
    what it is given: a second checkpoint starts from the first one merged (its parent, as
    inference stacks them), not from the bare base; unsloth is imported before transformers,
    trl and peft."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tiny import save_tiny_model

    here = Path(__file__).resolve().parent
    base = save_tiny_model(tmp_path / "tiny-base")
    log = tmp_path / "unsloth.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(here / "fake_unsloth"), str(here)]),
        "FAKE_UNSLOTH_LOG": str(log),
    }
    out = subprocess.run(
        [sys.executable, "-c", UNSLOTH_SCRIPT, str(base)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    (imported,) = [c for c in calls if c["event"] == "import"]
    assert imported["already"] == []  # unsloth came first
    loads = [c for c in calls if c["event"] == "from_pretrained"]
    assert [c["model_name"] for c in loads] == [str(base)] * 2
    assert all(c["load_in_4bit"] is False for c in loads)
    given = [c["fingerprint"] for c in calls if c["event"] == "get_peft_model"]
    assert given[0] == pytest.approx(result["bare"])  # the first trains on the base
    assert given[1] == pytest.approx(result["head_of_first"])  # the second on its parent
    assert given[1] != pytest.approx(result["bare"])
    assert result["first"]["backend"] == result["second"]["backend"] == "unsloth"
    assert result["second"]["parent"] == result["first"]["id"]

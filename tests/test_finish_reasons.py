"""Why each assistant turn ended, and what training learns from it: a turn cut off by
``max_tokens`` teaches its text, never an end-of-turn the model did not write; the tokens a
turn is trained after are the prompt inference fed; what the model wrote is never dropped.
Fast: scripted and fake models, a byte-level tokenizer, the tiny model."""

from types import SimpleNamespace

import pytest
from tiny import save_tiny_model, tiny_tokenizer

import workbench
from workbench import models
from workbench.models import RunInfo, Sampling, toolcalls
from workbench.models.base import Completion
from workbench.models.local import BatchingEngine, Generation, LocalModel
from workbench.models.scripted import ScriptedModel
from workbench.training.data import tokenize_conversation

END = "<|im_end|>"


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def learned(tokenizer, row) -> str:
    ids = [t for t, m in zip(row["input_ids"], row["assistant_masks"], strict=True) if m]
    return tokenizer.decode(ids)


# -- what training learns -------------------------------------------------------------------


def test_a_turn_cut_off_by_max_tokens_teaches_its_text_and_no_end_of_turn(tokenizer):
    messages = [
        {"role": "user", "content": "What is 3 + 4?"},
        {"role": "assistant", "content": "<tool_call>add</tool_call>"},
        {"role": "user", "content": "<tool_response>7</tool_response>"},
        {"role": "assistant", "content": "The answer is 7 because thr"},
    ]
    cut = tokenize_conversation(tokenizer, messages, ["tool_calls", "length"])
    assert (
        learned(tokenizer, cut) == "<tool_call>add</tool_call><|im_end|>The answer is 7 because thr"
    )
    whole = tokenize_conversation(tokenizer, messages, ["tool_calls", "stop"])
    assert learned(tokenizer, whole).endswith("thr<|im_end|>")
    # the sequence is the same either way: only what is learned differs
    assert cut["input_ids"] == whole["input_ids"]
    # a trace from before finish reasons were kept (none stored): every turn ended itself
    assert tokenize_conversation(tokenizer, messages, []) == whole


def test_finish_reasons_belong_to_the_generated_turns_after_a_few_shot_prompt(tokenizer):
    messages = [
        {"role": "user", "content": "2 + 2?"},
        {"role": "assistant", "content": "4"},  # a worked example in the prompt
        {"role": "user", "content": "3 + 4?"},
        {"role": "assistant", "content": "7 and"},
    ]
    row = tokenize_conversation(tokenizer, messages, ["length"])  # the one turn generated
    assert learned(tokenizer, row) == "4<|im_end|>7 and"


def _merging_tokenizer():
    """A byte-level tokenizer that merges two newlines into one token, as SmolLM2's does."""
    from tiny import CHATML
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    vocab["ĊĊ"] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[("Ċ", "Ċ")]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=END, pad_token="<|endoftext|>", chat_template=CHATML
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|im_start|>", END, "<|endoftext|>"]}
    )
    return tokenizer


def test_an_answer_starting_with_a_newline_is_trained_after_the_prompt_inference_fed():
    tokenizer = _merging_tokenizer()
    engine = SimpleNamespace(tokenizer=tokenizer)  # what the local engines encode with
    messages = [
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "\n5"},
        {"role": "user", "content": "And 2 + 4?"},
        {"role": "assistant", "content": "\n\n6"},
    ]
    row = tokenize_conversation(tokenizer, messages)
    ids, mask = row["input_ids"], row["assistant_masks"]
    starts = [i for i in range(len(mask)) if mask[i] and (i == 0 or not mask[i - 1])]
    assert len(starts) == 2
    for start, k in zip(starts, (1, 3), strict=True):
        prompt = BatchingEngine.encode_chat(engine, messages[:k])
        assert ids[:start] == prompt  # the very ids the engine fed to get this turn
    # every character of both answers is learned, none merged into the prompt's newline
    assert learned(tokenizer, row) == "\n5<|im_end|>\n\n6<|im_end|>"


def test_a_malformed_tool_call_stays_in_the_message_beside_the_one_that_parsed():
    good = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "2+3"}}\n</tool_call>'
    bad = "<tool_call>\n{bad json}\n</tool_call>"
    message = toolcalls.parse(f"{good}\n{bad}", 0)
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["calculate"]
    assert message["content"] == bad  # what the model wrote, for the researcher to read
    # text around a call is kept too, in its order
    message = toolcalls.parse(f"Let me compute.\n{good}\nDone soon.", 0)
    assert message["content"] == "Let me compute.\n\nDone soon."


# -- every model says why its turn ended --------------------------------------------------


async def test_scripted_turns_end_by_tool_calls_then_stop_and_the_trace_keeps_them():
    job = await workbench.evaluate(
        "arithmetic-train", "scripted:calculator", task_ids=["solve-100-1"]
    )
    (trace,) = job.traces()  # read back from the store
    assert trace.finish_reasons == ["tool_calls", "stop"]


def test_api_models_report_the_apis_own_finish_reason():
    from workbench.models.anthropic_api import from_anthropic
    from workbench.models.openai_api import _completion

    def openai_reply(reason):
        message = SimpleNamespace(content="5 and", tool_calls=None)
        return SimpleNamespace(
            choices=[SimpleNamespace(message=message, finish_reason=reason)], usage=None
        )

    assert _completion(openai_reply("length")).finish_reason == "length"
    assert _completion(openai_reply("stop")).finish_reason == "stop"

    def anthropic_reply(reason):
        text = SimpleNamespace(type="text", text="5 and")
        return SimpleNamespace(content=[text], usage=None, stop_reason=reason)

    said = {
        r: from_anthropic(anthropic_reply(r)).finish_reason
        for r in ("max_tokens", "tool_use", "end_turn", "stop_sequence", "refusal")
    }
    assert said == {
        "max_tokens": "length",
        "tool_use": "tool_calls",
        "end_turn": "stop",
        "stop_sequence": "stop",
        "refusal": "refusal",
    }


class _FakeEngine:
    """Answers every prompt with the text and finish reason it is given."""

    tokenizer = None

    def __init__(self, text, reason):
        self.text, self.reason = text, reason

    def encode_chat(self, messages):
        return [1, 2, 3]

    async def generate(self, ids, sampling, on_text=None):
        return Generation(self.text, self.reason, len(ids), 4)


async def test_a_local_completion_cut_off_by_max_tokens_says_length():
    model = LocalModel("smollm2-135m")  # the engine is never loaded: a fake stands in
    cases = [
        ("The answer is 5 bec", "length", "length"),
        ("5", "stop", "stop"),
        ('<tool_call>\n{"name": "add", "arguments": {}}\n</tool_call>', "stop", "tool_calls"),
        ('<tool_call>\n{"name": "add", "arguments": {}}', "length", "length"),  # never closed
    ]
    for text, reason, expected in cases:
        model._engine = _FakeEngine(text, reason)
        got = await model.complete([{"role": "user", "content": "?"}], [], Sampling(), RunInfo())
        assert got.finish_reason == expected, text


# -- through workbench.train --------------------------------------------------------------


class _CutScripted(ScriptedModel):
    """scripted:coin whose every answer was cut off by max_tokens."""

    async def complete(self, messages, tools, sampling, run) -> Completion:
        completion = await super().complete(messages, tools, sampling, run)
        completion.finish_reason = "length"
        return completion


@pytest.mark.parametrize("method", ["sft", "grpo"])
async def test_runs_cut_off_by_max_tokens_train_no_end_of_turn(tmp_path, monkeypatch, method):
    from workbench.training import sft

    monkeypatch.setitem(models._CACHE, "scripted:coin", _CutScripted("coin"))
    job = await workbench.evaluate(
        "mental-train", "scripted:coin", group_size=4, task_ids=["8-plus-5", "5-minus-3"]
    )
    assert {r for t in job.traces() for r in t.finish_reasons} == {"length"}
    workbench.fork(str(save_tiny_model(tmp_path / "tiny-base")), "tiny")
    seen = []

    def capture(model, tokenizer, tokenized, *args):
        seen.append((tokenizer, tokenized))
        return {"backend": "peft", "train_seconds": 0.0}

    monkeypatch.setattr(sft, "run_grpo" if method == "grpo" else "run_sft", capture)
    ckpt = workbench.train("tiny", method=method, jobs=[job.id], progress=False)
    ((tokenizer, tokenized),) = seen
    end = tokenizer.convert_tokens_to_ids(END)
    assert tokenized and all(sum(t["assistant_masks"]) > 0 for t in tokenized)
    for t in tokenized:  # in the sequence (the next turn's prompt has it), never learned
        assert not any(
            m for i, m in zip(t["input_ids"], t["assistant_masks"], strict=True) if i == end
        )
    assert ckpt.manifest["data"]["turns_cut_off"] == ckpt.manifest["data"]["traces"]

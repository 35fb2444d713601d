"""GRPO from grouped runs, and RFT, on tiny fixtures: a two-layer model built from a config."""

import json

import pytest
import torch
from tiny import save_tiny_model, tiny_model, tiny_tokenizer

import workbench
from workbench.errors import OptionsError
from workbench.traces import Trace
from workbench.training import training_steps
from workbench.training.data import EmptySelectionError, tokenize_conversation
from workbench.training.grpo import (
    advantages,
    group_traces,
    grpo_loss,
    kl_on_reference_samples,
    pad_batch,
    token_logps,
)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def conversation(answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": "What is 3 + 4?"}, {"role": "assistant", "content": answer}]


def run(task: str, reward: float, index: int, stop: str = "done", job: str = "j1") -> Trace:
    return Trace(
        job_id=job, task=task, model="m", group_index=index, reward=reward, stop_reason=stop
    )


# -- advantages ---------------------------------------------------------------------------


def test_advantages_of_a_hand_made_group():
    assert advantages([1.0, 0.0, 0.0, 0.0], scale=False) == [0.75, -0.25, -0.25, -0.25]
    # scaled by the group's std (Bessel: sqrt(0.75 / 3) = 0.5), as TRL does, plus 1e-4
    scaled = advantages([1.0, 0.0, 0.0, 0.0])
    assert scaled == pytest.approx([0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001])
    assert sum(scaled) == pytest.approx(0.0, abs=1e-12)
    assert advantages([0.5, 1.0], scale=False) == [-0.25, 0.25]


def test_groups_whose_rewards_are_all_equal_are_skipped_and_counted():
    traces = [
        *(run("a", r, i) for i, r in enumerate([1, 0, 1, 0])),  # a spread: used
        *(run("b", 0, i) for i in range(4)),  # all failed: no signal
        *(run("c", 1, i) for i in range(4)),  # all succeeded: no signal
        run("d", 1, 0),  # a single run: no group to compare with
        run("a", 1, 4, stop="error"),  # the infrastructure failed, not the model
        *(run("a", r, i, job="j2") for i, r in enumerate([0, 0, 1])),  # another job's group
    ]
    found = group_traces(traces)
    assert (found.groups, found.used, found.skipped, found.dropped_runs) == (5, 2, 3, 1)
    assert sorted(t.task for t, _ in found.rollouts) == ["a"] * 7
    by_job = {}
    for t, a in found.rollouts:
        by_job.setdefault(t.job_id, []).append(a)
    assert sum(by_job["j1"]) == pytest.approx(0) and sum(by_job["j2"]) == pytest.approx(0)


# -- the loss -----------------------------------------------------------------------------


def test_the_loss_mask_covers_assistant_tokens_only(tokenizer):
    messages = [
        {"role": "system", "content": "You add."},
        {"role": "user", "content": "What is 3 + 4?"},
        {"role": "assistant", "content": "<tool_call>add</tool_call>"},
        {"role": "user", "content": "<tool_response>7</tool_response>"},
        {"role": "assistant", "content": "7"},
    ]
    row = tokenize_conversation(tokenizer, messages)
    ids, mask = row["input_ids"], row["assistant_masks"]
    learned = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert learned == "<tool_call>add</tool_call><|im_end|>7<|im_end|>"
    # GRPO's tensors carry the same mask, shifted by one: position t scores token t + 1
    batch = pad_batch(
        [{**row, "advantage": 1.0}, tokenize_conversation(tokenizer, conversation("8"))], 0
    )
    assert batch["loss_mask"][0].tolist() == [float(m) for m in mask]
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()  # padded right
    model = tiny_model(tokenizer)
    logps, shifted = token_logps(model, batch)
    assert logps.shape == shifted.shape == (2, len(ids) - 1)
    assert shifted[0].tolist() == [float(m) for m in mask[1:]]


def test_only_the_learned_positions_go_through_the_lm_head_with_the_same_numbers(tokenizer):
    """GRPO scores a rollout's completion tokens only: the LM head (a fifth of SmolLM2's
    forward over every position) projects those alone, and the loss and its gradients are
    those of the full logits."""
    model = tiny_model(tokenizer)
    batch = pad_batch(
        [
            {**tokenize_conversation(tokenizer, conversation(a)), "advantage": adv}
            for a, adv in (("7", 1.0), ("8", -1.0), ("9", 0.5))
        ],
        tokenizer.pad_token_id,
    )
    rows = []
    head = model.get_output_embeddings()
    hook = head.register_forward_hook(lambda _m, args, _out: rows.append(args[0].shape[:-1]))

    def loss_and_grads(learned_only):
        model.zero_grad()
        logps, mask = token_logps(model, batch, 0.7, learned_only=learned_only)
        loss, _ = grpo_loss(logps, logps.detach() - 0.05, batch["advantages"], mask, beta=0.1)
        loss.backward()
        return logps * mask, loss, [p.grad.clone() for p in model.parameters()]

    full = loss_and_grads(False)
    learned = loss_and_grads(True)
    hook.remove()
    mask = batch["loss_mask"][:, 1:]
    assert rows[0] == batch["input_ids"].shape  # every position of every rollout
    assert rows[1] == (int(mask.sum()),) and rows[1][0] < mask.numel() / 2
    torch.testing.assert_close(learned[0], full[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(learned[1], full[1], rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(learned[2], full[2], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_the_kl_term_is_zero_against_itself(tokenizer):
    model = tiny_model(tokenizer)
    batch = pad_batch(
        [
            {**tokenize_conversation(tokenizer, conversation(a)), "advantage": adv}
            for a, adv in (("7", 1.0), ("8", -1.0))
        ],
        tokenizer.pad_token_id,
    )
    logps, mask = token_logps(model, batch)
    assert torch.equal(kl_on_reference_samples(logps, logps), torch.zeros_like(logps))
    with_kl, stats = grpo_loss(logps, logps.detach(), batch["advantages"], mask, beta=0.5)
    without, _ = grpo_loss(logps, logps.detach(), batch["advantages"], mask, beta=0.0)
    assert stats["kl"] == 0.0 and stats["clip_ratio"] == 0.0
    assert with_kl.item() == pytest.approx(without.item())
    # and away from itself it is positive, either way
    for moved in (logps.detach() + 0.1, logps.detach() - 0.1):
        assert kl_on_reference_samples(logps, moved)[mask.bool()].min() > 0
    # a rollout another model sampled has no estimate: left out, None if none is left
    _, stats = grpo_loss(
        logps,
        logps.detach() + 0.1,
        batch["advantages"],
        mask,
        sampled_by_reference=torch.tensor([True, False]),
    )
    _, first = grpo_loss(logps[:1], logps[:1].detach() + 0.1, batch["advantages"][:1], mask[:1])
    assert stats["kl_rows"] == 1 and stats["kl"] == pytest.approx(first["kl"])
    _, stats = grpo_loss(
        logps,
        logps.detach(),
        batch["advantages"],
        mask,
        sampled_by_reference=torch.tensor([False, False]),
    )
    assert stats["kl"] is None


def test_the_logged_kl_is_the_kl_from_the_parents_own_samples():
    """GRPO trains on rollouts the parent sampled while the policy moves away from it: the KL
    it logs (and weighs by beta) is KL(policy || parent) within sampling error, where TRL's
    k3 estimate, made for tokens the policy samples, is several times too large here (and
    grows without bound as the policy learns to avoid a token the parent chose)."""
    for seed in range(3):
        torch.manual_seed(seed)
        parent = torch.log_softmax(torch.randn(50), -1)
        policy = torch.log_softmax(parent + 1.5 * torch.randn(50), -1)
        exact = float((policy.exp() * (policy - parent)).sum())
        tokens = torch.multinomial(parent.exp(), 200_000, replacement=True)  # the parent's
        ours = float(kl_on_reference_samples(policy[tokens], parent[tokens]).mean())
        k3 = float((torch.exp(parent - policy) - (parent - policy) - 1)[tokens].mean())
        assert ours == pytest.approx(exact, rel=0.02)
        assert k3 > 3 * exact


def test_a_grpo_step_raises_the_log_probability_of_the_rewarded_completion(tokenizer):
    model = tiny_model(tokenizer)
    answers, rewards = ["7", "8", "9", "x"], [1.0, 0.0, 0.0, 0.0]
    batch = pad_batch(
        [
            {**tokenize_conversation(tokenizer, conversation(a)), "advantage": adv}
            for a, adv in zip(answers, advantages(rewards), strict=True)
        ],
        tokenizer.pad_token_id,
    )

    def answer_logps():
        with torch.no_grad():
            logps, mask = token_logps(model, batch)
        return (logps * mask).sum(-1)  # log-probability of each whole completion

    before = answer_logps()
    old = token_logps(model, batch)[0].detach()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        logps, mask = token_logps(model, batch)
        loss, _ = grpo_loss(logps, old, batch["advantages"], mask, epsilon=0.2, beta=0.04)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = answer_logps()
    gain = after - before
    assert gain[0] > 0  # the rewarded "7" is more likely
    # and gained more than any other ("<|im_end|>", shared by all, may rise for each)
    assert gain[0] > gain[1:].max()


def test_clipping_stops_a_ratio_that_already_moved_far():
    logps = torch.zeros(1, 3, requires_grad=True)
    old = torch.full((1, 3), -1.0)  # ratio e > 1 + epsilon
    loss, stats = grpo_loss(logps, old, torch.tensor([1.0]), torch.ones(1, 3))
    loss.backward()
    assert stats["clip_ratio"] == 1.0 and torch.equal(logps.grad, torch.zeros(1, 3))


# -- through workbench.train ----------------------------------------------------------------


@pytest.fixture
def tiny_fork(tmp_path):
    base = save_tiny_model(tmp_path / "tiny-base")
    workbench.fork(str(base), "tiny")
    return "tiny"


async def coin_job():
    # scripted:coin is right on about half of a task's runs: groups with a spread
    return await workbench.evaluate(
        "mental-train",
        "scripted:coin",
        group_size=4,
        task_ids=[
            "8-plus-5",
            "5-minus-3",
            "7-minus-6",
            "1-plus-7",
            "9-minus-2",
            "4-plus-4",
        ],
    )


async def test_grpo_trains_a_checkpoint_with_a_manifest_and_a_live_reward_curve(tiny_fork):
    job = await coin_job()
    steps = []
    ckpt = workbench.train(
        tiny_fork,
        method="grpo",
        jobs=[job.id],
        batch_size=4,
        beta=0.04,
        lr=1e-3,
        on_step=steps.append,
        progress=False,
    )
    m = ckpt.manifest
    assert ckpt.method == m["method"] == "grpo" and m["backend"] == "peft"
    assert m["metrics"]["precision"] == "fp32"  # the model's own dtype on a CPU
    data = m["data"]
    assert data["groups"] == 6 and data["groups_used"] + data["groups_skipped"] == 6
    assert data["rollouts"] == 4 * data["groups_used"] == data["traces"]
    assert data["temperature"] == 1.0 and data["on_policy"] is False  # a scripted sampler
    assert data["sampled_by"] == {"scripted:coin": data["traces"]}
    assert m["hyperparameters"]["beta"] == 0.04 and m["hyperparameters"]["epsilon"] == 0.2
    assert {"torch", "transformers", "trl", "peft"} <= set(m["versions"])
    assert m["metrics"]["steps"] == len(steps) > 0 and m["metrics"]["train_tokens_per_second"]
    assert {"step", "loss", "reward", "reward_std", "clip_ratio"} <= set(steps[0])
    # another model sampled these rollouts: no estimate of KL(policy || parent) holds, so none
    # is shown (the Loop's own rounds, sampled by the parent, log one: tests/test_loop.py)
    assert "kl" not in steps[0] and m["metrics"]["final_kl"] is None
    curve = training_steps(ckpt.id)
    assert len(curve) == len(steps) and curve["reward"].tolist() == [s["reward"] for s in steps]
    folder = ckpt.path
    assert json.loads(open(f"{folder}/manifest.json").read())["data"]["groups_used"] > 0
    assert workbench.get_store() and workbench.training.get_fork(tiny_fork).head == ckpt.id


async def test_the_training_panel_trains_grpo_with_a_live_reward_curve(tiny_fork):
    from widgets import TrainingPanel

    job = await coin_job()
    panel = TrainingPanel(tiny_fork)
    panel.jobs.value = (job.id,)
    panel.method.value = "grpo"
    assert panel.params["beta"].layout.display is None  # grpo's options shown, sft's hidden
    assert panel.params["min_reward"].layout.display == "none"
    panel.params["batch_size"].value = "4"
    ckpt = await panel.train()
    assert panel.error == "" and ckpt.method == "grpo"
    loss, reward = panel.loss.data
    steps = training_steps(ckpt.id)
    assert list(reward.x) == list(loss.x) == steps["step"].tolist()
    assert list(reward.y) == pytest.approx(steps["reward"].tolist())
    assert panel.tree.value == ckpt.id and "grpo on" in panel.tree.label


async def test_rft_learns_each_tasks_distinct_wins_once(tiny_fork):
    job = await coin_job()
    wins = {(t.task, json.dumps(t.messages)) for t in job.traces() if t.reward == 1}
    with pytest.warns(UserWarning, match="scripted:coin: .*SFT on others' wins"):
        ckpt = workbench.train(tiny_fork, method="rft", jobs=[job.id], progress=False)
    assert ckpt.manifest["data"]["on_policy"] is False
    assert ckpt.manifest["data"]["traces"] == len(wins)
    assert ckpt.manifest["data"]["tasks"] == len({task for task, _ in wins})
    # a second checkpoint chains on the first, whatever the method
    again = workbench.train(tiny_fork, method="grpo", jobs=[job.id], progress=False)
    assert again.parent == ckpt.id


@pytest.mark.parametrize("native_bf16", [False, True])
async def test_sft_trains_in_bf16_only_where_the_cpu_has_fast_bf16(
    tiny_fork, native_bf16, monkeypatch
):
    """TRL trains in bf16 by default; on a CPU without AVX-512 torch's bf16 matrix product is
    a scalar loop on one core (a demo SFT step took minutes instead of ~30 s): there the
    checkpoint is trained, and says it was trained, in fp32."""
    import torch

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native_bf16)
    job = await coin_job()
    ckpt = workbench.train(tiny_fork, method="rft", jobs=[job.id], progress=False)
    assert ckpt.manifest["metrics"]["precision"] == ("bf16" if native_bf16 else "fp32")


async def test_cpu_sft_projects_only_the_labelled_positions_and_trains_the_same(
    tiny_fork, tmp_path, monkeypatch
):
    """TRL's fused LM head scores every position of a batch off Triton devices; the loss is on
    the assistant's tokens only. On the CPU only those go through the head now: the same
    training (loss and adapter), fewer rows projected."""
    from safetensors.torch import load_file
    from trl.trainer import utils

    from workbench.training import sft

    job = await coin_job()
    workbench.fork(str(tmp_path / "tiny-base"), "tiny-every-position")
    rows: list[int] = []
    apply = utils._ChunkedLogProbFunction.apply

    def counted(hidden, *args):
        rows.append(hidden.shape[0])
        return apply(hidden, *args)

    monkeypatch.setattr(utils._ChunkedLogProbFunction, "apply", counted)
    with monkeypatch.context() as as_shipped:  # TRL's own choice: every position
        as_shipped.setattr(sft, "_score_labelled_positions_only", lambda: None)
        as_shipped.setattr(
            utils, "_use_triton", getattr(utils._use_triton, "wrapped", None) or utils._use_triton
        )
        every = workbench.train("tiny-every-position", method="rft", jobs=[job.id], progress=False)
    every_rows, rows[:] = sum(rows), []
    labelled = workbench.train(tiny_fork, method="rft", jobs=[job.id], progress=False)
    assert 0 < sum(rows) < every_rows / 2
    assert labelled.metrics["gradient_checkpointing"] is False  # short conversations
    assert labelled.metrics["train_loss"] == pytest.approx(every.metrics["train_loss"], abs=1e-4)
    ours, theirs = (
        load_file(f"{c.path}/adapter/adapter_model.safetensors") for c in (labelled, every)
    )
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-3, atol=1e-5)


def test_cpu_sft_keeps_activations_for_short_batches_and_recomputes_long_ones(monkeypatch):
    """Gradient checkpointing (TRL's default) costs a CPU step ~14%; it is left off where a
    batch's activations fit in memory with room to spare, and every checkpoint says which."""
    from types import SimpleNamespace

    from transformers import LlamaConfig

    from workbench.training import sft
    from workbench.training.trainer import TrainConfig

    smollm2 = SimpleNamespace(
        config=LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30)
    )
    cfg = TrainConfig(batch_size=8)

    def conversations(tokens):
        return [{"input_ids": [0] * tokens}] * 20

    monkeypatch.setattr(sft, "_free_memory", lambda: 24 << 30)
    assert not sft.gradient_checkpointing(smollm2, conversations(300), cfg)  # the Loop's
    assert sft.gradient_checkpointing(smollm2, conversations(1024), cfg)
    assert sft.gradient_checkpointing(smollm2, conversations(300), TrainConfig(batch_size=32))
    monkeypatch.setattr(sft, "_free_memory", lambda: 4 << 30)  # a busy laptop
    assert sft.gradient_checkpointing(smollm2, conversations(300), cfg)


async def test_no_signal_and_bad_options_are_one_line_errors(tiny_fork):
    job = await workbench.evaluate("mental-heldout", "scripted:expert", group_size=2)
    with pytest.raises(EmptySelectionError, match="no group of runs carries a signal") as err:
        workbench.train(tiny_fork, method="grpo", jobs=[job.id])
    assert "\n" not in str(err.value) and "30 with equal rewards" in str(err.value)
    with pytest.raises(OptionsError, match="method"):
        workbench.train(tiny_fork, method="ppo", jobs=[job.id])
    with pytest.raises(OptionsError, match="epsilon"):
        workbench.train(tiny_fork, method="grpo", jobs=[job.id], epsilon=2)


@pytest.mark.slow
def test_the_benchmark_times_grpo_on_a_model_built_from_a_config():
    """benchmarks/training.py --model config: what a GPU machine runs, here on the CPU."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "training.py"
    spec = importlib.util.spec_from_file_location("training_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    m = bench.config_run(epochs=1, device="cpu", rollouts=8, prompt=8, answer=4)
    assert m["steps"] == 1 and m["examples"] == 8 and m["train_tokens_per_second"] > 0


async def test_the_same_seed_trains_the_same_grpo_adapter(tmp_path):
    """Whatever else drew random numbers before (sampling, other training), seed=0 gives the
    same adapter: its starting weights are drawn after the seed too."""
    import torch
    from safetensors.torch import load_file

    base = save_tiny_model(tmp_path / "tiny-base")
    job = await coin_job()
    adapters = []
    for name in ("first", "second"):
        workbench.fork(str(base), name)
        torch.rand(7)  # something else in the process used torch's generator
        ckpt = workbench.train(name, method="grpo", jobs=[job.id], seed=0, progress=False)
        adapters.append(load_file(f"{ckpt.path}/adapter/adapter_model.safetensors"))
    assert adapters[0].keys() == adapters[1].keys()
    assert all(torch.equal(adapters[0][k], adapters[1][k]) for k in adapters[0])


async def test_a_job_named_twice_is_read_once(tiny_fork):
    from workbench.training import select_traces
    from workbench.training.grpo import select_groups

    job = await coin_job()
    once = select_groups(None, [job.id])
    assert select_groups(None, [job.id, job.id[:6]]).summary() == once.summary()
    assert len(select_traces(jobs=[job.id, job.id[:6]])) == len(select_traces(jobs=[job.id]))


async def test_grpo_refuses_a_job_sampled_at_temperature_0_rather_than_read_it_as_1(tiny_fork):
    from workbench.errors import WorkbenchError

    greedy = await workbench.evaluate(
        "mental-train", "scripted:coin", group_size=4, task_ids=["8-plus-5"], temperature=0.0
    )
    with pytest.raises(WorkbenchError, match="temperature 0"):
        workbench.train(tiny_fork, method="grpo", jobs=[greedy.id], progress=False)
    # a temperature of one's own is taken as given, and the manifest says so
    ckpt = workbench.train(
        tiny_fork, method="grpo", jobs=[greedy.id], temperature=0.5, progress=False
    )
    assert ckpt.manifest["data"]["temperature"] == 0.5
    # a job at another temperature is read as it is
    warm = await workbench.evaluate(
        "mental-train", "scripted:coin", group_size=4, task_ids=["8-plus-5"], temperature=0.7
    )
    ckpt = workbench.train(tiny_fork, method="grpo", jobs=[warm.id], progress=False)
    assert ckpt.manifest["data"]["temperature"] == 0.7

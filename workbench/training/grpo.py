"""GRPO from grouped runs: the group of an evaluation is the group of the policy gradient.

```python
job = await workbench.evaluate("mental-train", "my-model", group_size=8, temperature=1.0)
ckpt = workbench.train("my-model", method="grpo", jobs=[job.id], beta=0.04)
ckpt.manifest["data"]["groups_used"], ckpt.manifest["data"]["groups_skipped"]
```

**Advantages.** The runs of one task in one job (same model and checkpoint) form a group.
A run's advantage is its reward minus the group's mean reward, divided by the group's
standard deviation when ``scale_rewards`` is on (DeepSeekMath's GRPO; off, the centring
alone, as Dr. GRPO argues). A group whose rewards are all equal has zero advantage for
every run: it carries no signal, so it is skipped and counted (``groups_skipped``), not
paid for with a forward pass. Runs that ended by ``error``, ``timeout`` or ``cancelled``
are the infrastructure's failures, not the model's, and are left out before grouping.

**Loss.** Each trace is rendered and masked exactly as SFT renders it
(:func:`~workbench.training.data.tokenize_conversation`): the loss covers the assistant
turns and their end-of-turn tokens, never the prompt or tool results. Per token it is PPO's
clipped surrogate ``-min(r * A, clip(r, 1 - epsilon, 1 + epsilon) * A)`` with
``r = pi(token) / pi_old(token)``, plus ``beta`` times KL(pi || parent), averaged over a
sequence's tokens and then over sequences: TRL's ``GRPOTrainer`` with ``loss_type="grpo"``,
so ``epsilon``, ``beta`` and ``scale_rewards`` mean what they mean there. One difference, in
how the KL is estimated: TRL's tokens come from the policy being trained, and it uses the k3
estimate ``exp(ref - logp) - (ref - logp) - 1``, unbiased for tokens the policy samples.
Here every token was sampled by the parent (the reference) and the policy moves away from
it for a whole epoch; on the parent's tokens k3's mean is not the KL and explodes wherever
the policy learned to avoid a token the parent chose (a Loop round on the bundled model:
7 x 10^4 in the batch where one token's log-probability had fallen by 16). So the KL is
estimated for the parent's samples: ``w log w - w + 1`` with
``w = pi(token) / parent(token)`` (:func:`kl_on_reference_samples`: never < 0, 0 where they
agree, the KL in expectation), in the loss and in the logged ``kl``. Where a rollout was not
sampled by the parent (``on_policy: false``), no estimate holds: the logged ``kl`` leaves
those rollouts out and is ``None`` where none is left. Log-probabilities are taken at the
rollouts' sampling temperature (the jobs' own, unless ``temperature`` is given), as TRL does.

**Old and reference policy.** The Loop samples the fork's HEAD, which is the parent of the
checkpoint being trained. peft initialises LoRA's ``B`` to zero, so before the first update
the policy *is* the parent: one no-grad pass gives the old log-probabilities (for the
ratio) and the reference ones (for the KL term) at once. Traces sampled by another model
are treated as if the parent had sampled them; the manifest says ``on_policy: false``.

**What comes from TRL, and what is written here, and why.** TRL's ``GRPOTrainer`` makes its
own rollouts inside its training loop (``generate`` or vLLM, from a dataset of prompts;
even its experimental ``rollout_func`` is called per batch of prompts and returns one
completion per prompt). Workbench's rollouts already exist: stored traces, multi-turn, with
tool results written by the environment and rewards given by the scenario, sampled by the
workbench's batched engine (or a Ray cluster, or any OpenAI-compatible server). Feeding them
through the trainer would mean faking its generation step; so the short loop that turns
stored traces into advantages, masks and optimizer steps is written here (this module),
and the parts that fit are TRL's and peft's: TRL's ``selective_log_softmax`` (memory-light,
Triton-fused on a GPU) for per-token log-probabilities, its loss formula as above, peft's
LoRA for the adapter (the same adapter SFT writes, so checkpoints of both methods chain).
On CUDA with the ``gpu`` extra the model is Unsloth's ``FastLanguageModel`` and the same loop
trains it; that path is not exercised by the test suite (no GPU in CI) but imports cleanly.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:  # the tensor code below needs neither the store nor pydantic
    import torch

    from workbench.store import Store
    from workbench.traces import Trace

# Runs that ended this way failed for reasons outside the model: no signal about it.
NOT_THE_MODEL = ("error", "timeout", "cancelled")
EPS = 1e-4  # added to the group's std, as TRL does, so a tiny spread does not explode


def advantages(rewards: Sequence[float], scale: bool = True) -> list[float] | None:
    """Group-relative advantages: ``reward - mean`` (divided by the group's std when
    ``scale``); None when the group carries no signal (fewer than two runs, or all equal).

    >>> advantages([1.0, 0.0, 0.0, 0.0], scale=False)
    [0.75, -0.25, -0.25, -0.25]
    """
    if len(rewards) < 2 or max(rewards) - min(rewards) < 1e-9:
        return None
    mean = sum(rewards) / len(rewards)
    centred = [r - mean for r in rewards]
    if not scale:
        return centred
    # Bessel-corrected, as torch.std and TRL's nanstd
    std = math.sqrt(sum(c * c for c in centred) / (len(rewards) - 1))
    return [c / (std + EPS) for c in centred]


@dataclass
class Groups:
    """Traces with their advantages, and what was left out and why."""

    rollouts: list[tuple[Trace, float]] = field(default_factory=list)
    groups: int = 0  # groups found
    used: int = 0  # groups with a spread of rewards
    skipped: int = 0  # groups whose rewards were all equal (or a single run)
    dropped_runs: int = 0  # runs ended by error / timeout / cancelled
    mean_reward: float = 0.0  # over every run kept, skipped groups included

    def summary(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "groups_used": self.used,
            "groups_skipped": self.skipped,
            "runs_dropped": self.dropped_runs,
            "rollouts": len(self.rollouts),
            "mean_reward": round(self.mean_reward, 4),
        }


def group_traces(traces: Iterable[Trace], scale: bool = True) -> Groups:
    """Group runs by (job, task, model, checkpoint) and give each run its advantage."""
    found = Groups()
    by_group: dict[tuple, list[Trace]] = defaultdict(list)
    rewards = []
    for trace in traces:
        if trace.stop_reason in NOT_THE_MODEL:
            found.dropped_runs += 1
            continue
        by_group[(trace.job_id, trace.task, trace.model, trace.checkpoint)].append(trace)
        rewards.append(trace.reward)
    found.groups = len(by_group)
    found.mean_reward = sum(rewards) / len(rewards) if rewards else 0.0
    for key in sorted(by_group, key=str):
        runs = sorted(by_group[key], key=lambda t: t.group_index)
        adv = advantages([t.reward for t in runs], scale)
        if adv is None:
            found.skipped += 1
            continue
        found.used += 1
        found.rollouts.extend(zip(runs, adv, strict=True))
    return found


def select_groups(
    taskset: str | None = None,
    jobs: Iterable[str] | None = None,
    scale: bool = True,
    store: Store | None = None,
) -> Groups:
    """The grouped runs of a taskset and/or jobs, with advantages; raises
    :class:`EmptySelectionError` when no group has a spread of rewards."""
    from workbench.store import get_store
    from workbench.training.data import EmptySelectionError

    store = store or get_store()
    if taskset is None and not jobs:
        raise WorkbenchError("say which runs to train on: a taskset, jobs, or both")
    # dict.fromkeys: a job named twice (an id and its prefix) is read once
    job_ids = list(dict.fromkeys(store.get_job(j)["id"] for j in jobs)) if jobs else [None]
    traces = [t for job_id in job_ids for t in store.traces(job_id=job_id, taskset=taskset)]
    found = group_traces(traces, scale)
    if not found.rollouts:
        raise EmptySelectionError(
            f"no group of runs carries a signal: {found.groups} groups, {found.skipped} with "
            f"equal rewards for every run (mean reward {found.mean_reward:.2f}), "
            f"{found.dropped_runs} runs ended by an error or timeout; evaluate with a group "
            "size of 2 or more, at a temperature above 0, on tasks the model solves sometimes"
        )
    return found


# -- tensors ------------------------------------------------------------------------------


def pad_batch(examples: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad tokenized conversations into ``input_ids``, ``attention_mask`` and
    ``loss_mask`` (1 on assistant tokens); ``advantages`` per sequence."""
    import torch

    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    loss_mask = torch.zeros((len(examples), width), dtype=torch.float32)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        attention[i, :n] = 1
        loss_mask[i, :n] = torch.tensor(e["assistant_masks"], dtype=torch.float32)
    advantages_ = torch.tensor([float(e.get("advantage", 0.0)) for e in examples])
    return {
        "input_ids": ids,
        "attention_mask": attention,
        "loss_mask": loss_mask,
        "advantages": advantages_,
    }


# Models whose logits are their LM head's output as it is (no scaling or soft-capping after
# it): the head may be applied to the positions that are learned alone.
_PLAIN_HEADS = {"llama", "mistral", "qwen2", "qwen3"}


def token_logps(
    model, batch: dict[str, torch.Tensor], temperature: float = 1.0, *, learned_only: bool = True
):
    """(log-probabilities of each next token, the mask of those to learn): both shaped
    ``(batch, length - 1)``; position t is the probability of token t + 1.

    With ``learned_only`` (and a model of a plain-head family) only the positions the mask
    keeps go through the LM head, and the others read 0: a rollout's completion is a small
    part of its tokens, and SmolLM2's head (49,152 x 576) costs a fifth of a forward pass over
    every position. What the loss sees is the same."""
    from trl.trainer.utils import selective_log_softmax

    ids, mask = batch["input_ids"], batch["loss_mask"][:, 1:]
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(inner, "config", None)
    if learned_only and getattr(config, "model_type", None) in _PLAIN_HEADS:
        hidden = inner.base_model(input_ids=ids, attention_mask=batch["attention_mask"])
        hidden = hidden.last_hidden_state[:, :-1]
        keep = mask.bool()
        logits = inner.get_output_embeddings()(hidden[keep])
        picked = selective_log_softmax(logits.float(), ids[:, 1:][keep], temperature=temperature)
        logps = picked.new_zeros(mask.shape).masked_scatter(keep, picked)
        return logps, mask
    logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits[:, :-1]
    logps = selective_log_softmax(logits.float(), ids[:, 1:], temperature=temperature)
    return logps, mask


def kl_on_reference_samples(logps, ref_logps):
    """Per-token estimate of KL(policy || reference) from tokens the *reference* sampled:
    ``w log w - w + 1``, ``w = policy / reference`` (importance-weighted: its mean under the
    reference's sampling is the KL). 0 where they agree, never < 0."""
    import torch

    log_w = logps - ref_logps
    w = torch.exp(log_w)
    return w * log_w - w + 1


def grpo_loss(
    logps,
    old_logps,
    advantages_,
    mask,
    *,
    epsilon: float = 0.2,
    beta: float = 0.0,
    ref_logps=None,
    sampled_by_reference=None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """TRL's ``loss_type="grpo"``: the clipped surrogate (+ beta * KL) per token, averaged
    over each sequence's masked tokens, then over sequences. Returns (loss, statistics):
    ``kl`` the mean over the rows in ``sampled_by_reference`` (a bool per row; all by default)
    of their per-token KL, ``None`` if none is, and ``kl_rows`` their count."""
    import torch

    adv = advantages_.unsqueeze(1)
    ratio = torch.exp(logps - old_logps)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl = kl_on_reference_samples(logps, ref_logps if ref_logps is not None else old_logps)
    if beta:
        per_token = per_token + beta * kl
    tokens = mask.sum(-1).clamp(min=1.0)
    loss = ((per_token * mask).sum(-1) / tokens).mean()
    with torch.no_grad():
        was_clipped = ((ratio < 1 - epsilon) & (adv < 0)) | ((ratio > 1 + epsilon) & (adv > 0))
        rows = (kl * mask).sum(-1) / tokens
        if sampled_by_reference is not None:
            rows = rows[sampled_by_reference.to(rows.device)]
        stats = {
            "kl": float(rows.mean()) if len(rows) else None,
            "kl_rows": len(rows),
            "clip_ratio": float((was_clipped.float() * mask).sum() / mask.sum().clamp(min=1.0)),
        }
    return loss, stats


# -- the training loop ----------------------------------------------------------------------


def train_grpo(
    model, tokenizer, examples: list[dict[str, Any]], cfg, out, logger, progress, backend="peft"
):
    """Train a LoRA adapter on ``examples`` (tokenized rollouts with ``advantage`` and
    ``reward``); save it to ``out/adapter`` and return the run's metrics. ``backend``
    "unsloth": the model already carries Unsloth's LoRA adapter."""
    import torch

    torch.manual_seed(cfg.seed)  # the adapter's starting weights too: the same seed, the same run
    if backend != "unsloth":
        model = _with_lora(model, cfg)
    limit = getattr(cfg, "max_length", None)
    if limit:  # as SFT does: longer conversations are cut (their ends are not learned)
        examples = [
            {
                **e,
                "input_ids": e["input_ids"][:limit],
                "assistant_masks": e["assistant_masks"][:limit],
            }
            for e in examples
        ]
    device = next(model.parameters()).device
    plain = backend != "unsloth"  # Unsloth's model: its own forward, logits and all
    temperature = 1.0 if cfg.temperature is None else cfg.temperature  # 0 is refused earlier
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    torch.manual_seed(cfg.seed)

    def batches(rows: list[int]) -> Iterable[list[int]]:
        for start in range(0, len(rows), cfg.batch_size):
            yield rows[start : start + cfg.batch_size]

    # The policy before any update: the parent (LoRA's B starts at 0): old = reference.
    started = time.perf_counter()
    model.eval()
    old: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        for chunk in batches(list(range(len(examples)))):
            batch = _to(pad_batch([examples[i] for i in chunk], pad_id), device)
            logps, _ = token_logps(model, batch, temperature, learned_only=plain)
            for row, i in enumerate(chunk):
                old[i] = logps[row].detach()
    model.train()

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total = max(1, math.ceil(per_epoch * cfg.epochs / cfg.grad_accum))
    scheduler = _scheduler(optimizer, total)
    rng = random.Random(cfg.seed)
    bar = _bar(total, progress)
    step, micro, window = 0, 0, _Window()
    losses = []
    tokens_seen = 0
    epoch = 0.0
    while step < total:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for chunk in batches(order):
            batch = _to(pad_batch([examples[i] for i in chunk], pad_id), device)
            width = batch["input_ids"].shape[1] - 1
            old_logps = torch.stack([_fit(old[i], width) for i in chunk]).to(device)
            logps, mask = token_logps(model, batch, temperature, learned_only=plain)
            loss, stats = grpo_loss(
                logps,
                old_logps,
                batch["advantages"],
                mask,
                epsilon=cfg.epsilon,
                beta=cfg.beta,
                sampled_by_reference=torch.tensor(
                    [examples[i].get("sampled_by_parent", True) for i in chunk]
                ),
            )
            (loss / cfg.grad_accum).backward()
            tokens_seen += int(batch["attention_mask"].sum())
            window.add(loss, stats, [examples[i] for i in chunk], mask)
            micro += 1
            epoch += len(chunk) / len(examples)
            if micro % cfg.grad_accum:
                continue
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            row = window.flush(epoch, scheduler.get_last_lr()[0])
            losses.append(row["loss"])
            logger(step, row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4f}", reward=f"{row['reward']:.2f}")
            if step >= total:
                break
    if bar is not None:
        bar.close()
    train_seconds = time.perf_counter() - started
    model.save_pretrained(str(out / "adapter"))
    dtype = next(model.parameters()).dtype  # GRPO's loop runs in the model's own dtype
    return {
        "backend": backend,
        "precision": {"torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(str(dtype), "fp32"),
        "train_loss": round(sum(losses) / len(losses), 4) if losses else None,
        "final_loss": round(losses[-1], 4) if losses else None,
        "steps": step,
        "train_seconds": round(train_seconds, 2),
        "trained_tokens": tokens_seen,
        "final_kl": window.last.get("kl"),
    }


class _Window:
    """Sums over the micro-batches of one optimizer step, for one logged row."""

    def __init__(self):
        self.rows: list[tuple[float, dict, list, float]] = []
        self.last: dict[str, Any] = {}

    def add(self, loss, stats, examples, mask) -> None:
        self.rows.append((float(loss.detach()), stats, examples, float(mask.sum())))

    def flush(self, epoch: float, lr: float) -> dict[str, Any]:
        n = len(self.rows)
        rewards = [e["reward"] for _, _, ex, _ in self.rows for e in ex]
        advs = [abs(e["advantage"]) for _, _, ex, _ in self.rows for e in ex]
        row = {
            "loss": sum(r[0] for r in self.rows) / n,
            "epoch": round(epoch, 4),
            "learning_rate": lr,
            "reward": sum(rewards) / len(rewards),
            "reward_std": _std(rewards),
            "advantage": sum(advs) / len(advs),
            "kl": _weighted_kl(self.rows),
            "clip_ratio": sum(r[1]["clip_ratio"] for r in self.rows) / n,
            "completion_tokens": sum(r[3] for r in self.rows),
        }
        self.rows, self.last = [], row
        return row


def _weighted_kl(rows) -> float | None:
    """The step's KL: over the rollouts the parent sampled, in all its micro-batches."""
    counted = [(r[1]["kl"], r[1]["kl_rows"]) for r in rows if r[1]["kl_rows"]]
    n = sum(k for _, k in counted)
    return sum(kl * k for kl, k in counted) / n if n else None


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _fit(t, width: int):
    """A row of old log-probabilities padded or cut to this batch's width."""
    import torch

    if t.shape[0] >= width:
        return t[:width]
    return torch.cat([t, t.new_zeros(width - t.shape[0])])


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def _scheduler(optimizer, total: int):
    from transformers import get_scheduler

    # a short warm-up (as SFT's) and a constant rate: rounds are few steps each
    warmup = min(2, max(0, total - 1))
    return get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=warmup)


def _bar(total: int, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="grpo", unit="step")


def _with_lora(model, cfg):
    """peft LoRA on every linear layer, as SFT's."""
    from peft import get_peft_model

    from workbench.training.trainer import lora_config

    return get_peft_model(model, lora_config(cfg))

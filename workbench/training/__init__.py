"""Training: forks of base models, checkpoint trees, and SFT / RFT / GRPO on traces."""

from workbench.training.data import select_traces, to_dataset, tokenize_conversation
from workbench.training.registry import (
    Checkpoint,
    Fork,
    checkpoints,
    fork,
    get_fork,
    list_forks,
    set_head,
)
from workbench.training.trainer import METHODS, TrainConfig, train, training_steps

__all__ = [
    "METHODS",
    "Checkpoint",
    "Fork",
    "TrainConfig",
    "checkpoints",
    "fork",
    "get_fork",
    "list_forks",
    "select_traces",
    "set_head",
    "to_dataset",
    "tokenize_conversation",
    "train",
    "training_steps",
]

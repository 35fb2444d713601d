"""A stand-in for Unsloth (tests/test_training.py): it records when it was imported and what
FastLanguageModel was given, and builds the model with plain transformers + peft, so the
Unsloth training path runs on a CPU. Never installed; put on PYTHONPATH by the test only."""

import json
import os
import sys

LOG = os.environ["FAKE_UNSLOTH_LOG"]


def _log(**entry):
    with open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")


_log(event="import", already=[m for m in ("transformers", "trl", "peft") if m in sys.modules])


def fingerprint(model) -> float:
    """A number that changes when any weight does (the sum of every parameter)."""
    return float(sum(p.detach().double().sum().item() for p in model.parameters()))


class FastLanguageModel:
    @staticmethod
    def from_pretrained(model_name, max_seq_length=None, load_in_4bit=False, **kwargs):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _log(event="from_pretrained", model_name=str(model_name), load_in_4bit=load_in_4bit)
        model = AutoModelForCausalLM.from_pretrained(model_name)
        return model, AutoTokenizer.from_pretrained(model_name)

    @staticmethod
    def get_peft_model(model, r, lora_alpha, lora_dropout, target_modules, random_state, **kw):
        from peft import LoraConfig, get_peft_model

        _log(event="get_peft_model", fingerprint=fingerprint(model), r=r)
        config = LoraConfig(
            r=r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=target_modules,
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, config)

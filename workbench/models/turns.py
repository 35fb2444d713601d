"""A conversation's token ids, turn by turn: the one encoding inference and training share.

```python
ids = encode(tokenizer, messages)                      # the prompt the local engine feeds
for kind, text, turn in pieces(tokenizer, messages):   # ("prompt" | "content" | "end", ...)
    ...
```

Tokenising a whole rendered conversation as one text lets the template's text and an
assistant turn's text merge into one token where they meet: SmolLM2 writes
``<|im_start|>assistant\\n`` and an answer ``"\\n\\n5"`` becomes ``assistant``, ``\\n\\n``,
``\\n``, ``5`` — a token the model never saw in its prompt and never wrote. So the text is
cut where each assistant turn's content starts and ends, and each piece is tokenised on
its own: the prompt of turn k is then the same ids whether it is fed to the engine to
generate turn k or is the start of a training sequence that goes on past it, and the
content's ids are the model's text as it wrote it after that prompt. Both the local
engines (:meth:`~workbench.models.local.BatchingEngine.encode_chat`) and training
(:func:`~workbench.training.data.tokenize_conversation`) encode with this module.
"""

from __future__ import annotations

from typing import Any, Literal

from workbench.errors import WorkbenchError

Kind = Literal["prompt", "content", "end"]


def pieces(
    tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False
) -> list[tuple[Kind, str, int | None]]:
    """The rendered conversation cut into ``(kind, text, turn)``: ``prompt`` (template text,
    system, user and tool turns), an assistant turn's ``content`` and its ``end`` (the
    end-of-turn token(s) the model writes, without the newline the template adds after them).
    ``turn`` numbers the assistant turns from 0 (None for prompt pieces). The texts join to
    exactly ``apply_chat_template(messages, tokenize=False, add_generation_prompt=...)``."""
    full = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    out: list[tuple[Kind, str, int | None]] = []
    done = 0  # characters of ``full`` already cut into pieces
    turn = 0
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(
            messages[:k], tokenize=False, add_generation_prompt=True
        )
        through = tokenizer.apply_chat_template(messages[: k + 1], tokenize=False)
        if not full.startswith(through) or not through.startswith(before) or len(before) < done:
            raise WorkbenchError("the chat template does not render turns as a growing prefix")
        written = through[len(before) :]  # content + end-of-turn (+ the template's newline)
        content = message.get("content") or ""
        if not written.startswith(content):  # a template that trims: find the trimmed text
            at = written.find(content.strip())
            if at < 0:
                raise WorkbenchError(
                    "the chat template changes an assistant turn's text: cannot tell which "
                    "tokens the model wrote"
                )
            content = written[: at + len(content.strip())]
        end = written[len(content) :].rstrip("\n")
        out.append(("prompt", full[done : len(before)], None))
        out.append(("content", content, turn))
        out.append(("end", end, turn))
        done = len(before) + len(content) + len(end)
        turn += 1
    out.append(("prompt", full[done:], None))
    return [p for p in out if p[1] or p[0] == "content"]


def ids_of(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def encode(
    tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = True
) -> list[int]:
    """The ids of a rendered conversation, each piece of :func:`pieces` tokenised alone."""
    return [
        i
        for _, text, _ in pieces(tokenizer, messages, add_generation_prompt)
        for i in ids_of(tokenizer, text)
    ]

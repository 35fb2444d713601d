"""A saved Hugging Face tokenizer, read without transformers' tokenizer classes.

```python
tokenizer = ChatTokenizer(folder)  # a folder saved by `save_pretrained` (tokenizer.json)
ids = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False,
                                              add_generation_prompt=True),
                add_special_tokens=False)["input_ids"]
text = tokenizer.decode(ids, skip_special_tokens=True)
```

The llama.cpp engine needs a tokenizer and a chat template, not a model. Importing
transformers' ``AutoTokenizer`` machinery took 8.4 s of a 12 s engine load on a 2-core AVX2
machine; this class reads the same ``tokenizer.json`` with the ``tokenizers`` library
(the one transformers' fast tokenizers wrap) and renders the chat template with
transformers' own renderer, so prompts are the same tokens and texts the same strings (a
test compares both with ``AutoTokenizer`` on the bundled model). It implements only what
the engines call: ``apply_chat_template`` (no tokenising, no tools), ``__call__``,
``decode``, ``convert_tokens_to_ids``, ``unk_token_id`` and the special tokens' names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# transformers' named special tokens, which a chat template sees as variables
SPECIAL_TOKENS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
# transformers' clean-up of spaces before punctuation (WordPiece tokenizers only)
_CLEAN_UP = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


def readable(folder: Path) -> bool:
    """Whether ``folder`` holds a tokenizer this class reads (a fast tokenizer, saved)."""
    return (folder / "tokenizer.json").is_file() and (folder / "tokenizer_config.json").is_file()


class ChatTokenizer:
    def __init__(self, folder: Path):
        from tokenizers import Tokenizer
        from transformers.utils.chat_template_utils import render_jinja_template

        folder = Path(folder)
        config = json.loads((folder / "tokenizer_config.json").read_text())
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._render = render_jinja_template
        self.chat_template = _chat_template(folder, config)
        self.special_tokens_map: dict[str, str] = {}
        for name in SPECIAL_TOKENS:
            token = config.get(name)
            if isinstance(token, dict):  # a serialised AddedToken
                token = token.get("content")
            if token is not None:
                self.special_tokens_map[name] = str(token)
        if "pad_token" not in self.special_tokens_map and "eos_token" in self.special_tokens_map:
            self.special_tokens_map["pad_token"] = self.special_tokens_map["eos_token"]
        self._clean_up = bool(config.get("clean_up_tokenization_spaces")) and (
            type(self._tokenizer.model).__name__ != "BPE"  # as transformers 5 does
            or bool(
                config.get(
                    "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output"
                )
            )
        )

    def _id(self, name: str) -> int | None:
        token = self.special_tokens_map.get(name)
        return None if token is None else self._tokenizer.token_to_id(token)

    @property
    def unk_token_id(self) -> int | None:
        return self._id("unk_token")

    def convert_tokens_to_ids(self, token: str) -> int | None:
        found = self._tokenizer.token_to_id(token)
        return self.unk_token_id if found is None else found

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        *,
        tokenize: bool = True,
        add_generation_prompt: bool = False,
        **kwargs: Any,
    ) -> str:
        if tokenize:
            raise NotImplementedError(
                "ChatTokenizer renders the template only: call it with tokenize=False, then "
                "tokenise the text with add_special_tokens=False"
            )
        if not messages:
            raise ValueError("cannot apply a chat template to an empty conversation")
        if self.chat_template is None:
            raise ValueError("this tokenizer has no chat template")
        rendered, _ = self._render(
            conversations=[messages],
            chat_template=self.chat_template,
            add_generation_prompt=add_generation_prompt,
            **{**self.special_tokens_map, **kwargs},
        )
        return rendered[0]

    def __call__(self, text: str, *, add_special_tokens: bool = True) -> dict[str, list[int]]:
        encoding = self._tokenizer.encode(text, add_special_tokens=add_special_tokens)
        return {"input_ids": encoding.ids}

    def decode(self, ids: list[int], *, skip_special_tokens: bool = False) -> str:
        text = self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
        if self._clean_up:
            for before, after in _CLEAN_UP:
                text = text.replace(before, after)
        return text


def _chat_template(folder: Path, config: dict[str, Any]) -> str | None:
    saved = folder / "chat_template.jinja"
    if saved.is_file():
        return saved.read_text()
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        return named.get("default")
    return template

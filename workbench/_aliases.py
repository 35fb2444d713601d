"""The checkout's old import paths: ``widgets`` and ``environments`` are the installed
``workbench.widgets`` and ``workbench.environments``, the same modules, never a second copy.

The folders stay at the top of the repository (the layout users see) and are installed
under the project's namespace (``pyproject.toml``'s package-dir), so the wheel adds no
top-level package that could collide with another distribution's. Where the repository's
root is on the import path (a checkout: tests, ``python -m``), ``import widgets`` still
works: the folder's ``__init__`` calls :func:`alias`, and every ``widgets.X`` import is
answered with the module ``workbench.widgets.X`` (classes keep one identity, environments
one name).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, old: str, new: str):
        self.old, self.new = old, new
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(self.old + "."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(self.new + spec.name[len(self.old) :])
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # The module ran once, under its installed name. The import system has just set its
        # __spec__ to the alias's; put its own back (find_spec, a package's __path__ and
        # anything that locates its files read it).
        module.__spec__ = self._specs.pop(module.__name__, module.__spec__)


def alias(old: str, new: str) -> None:
    """Make ``old.X`` import as ``new.X`` (``old`` itself: call from its ``__init__``)."""
    if not any(isinstance(f, _Alias) and f.old == old for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias(old, new))
    sys.modules[old] = importlib.import_module(new)

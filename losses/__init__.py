"""lossbench losses: ``build_loss(name, **kw)``, ``available()``; the contract is in docs/losses.md.

Importing a module registers its losses, and every public module of this package is imported here,
so a new loss module needs no edit of this file.
"""
import importlib
import pkgutil

from losses.registry import available, build_loss, get_loss_class, loss_task, register

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["available", "build_loss", "get_loss_class", "loss_task", "register"]

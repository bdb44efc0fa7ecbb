"""The loss registry: one decorated class per loss, looked up by name.

Adding a loss touches two files: one ``@register("name", task=...)`` class in a module of
``losses/`` (a new module is imported by ``losses/__init__.py`` on its own) and
``configs/loss/<name>.yaml`` (``defaults: [base/segmentation@_here_, ...]`` plus the loss's own
keywords; ``tests/losses/test_configs.py`` checks it against the constructor). The registry-wide
tests in ``tests/losses/`` cover the new loss without an edit. A third file changes only if the
loss should join the benchmark preset: its name in ``configs/experiment/loss_benchmark.yaml``
(``tests/test_sweeps.py`` fails until it is there, so the preset never silently misses a loss).
"""
from __future__ import annotations

from typing import Callable, TypeVar

from torch import nn

TASKS = ("segmentation", "detection")

_REGISTRY: dict[str, type[nn.Module]] = {}
_TASK_OF: dict[str, str] = {}

T = TypeVar("T", bound=type[nn.Module])


def register(name: str, task: str = "segmentation") -> Callable[[T], T]:
    """Class decorator that registers a loss under ``name`` for ``task``."""
    if task not in TASKS:
        raise ValueError(f"register({name!r}): task must be one of {TASKS}, got {task!r}")

    def decorator(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"loss name {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        _REGISTRY[name] = cls
        _TASK_OF[name] = task
        cls.registry_name = name
        return cls

    return decorator


def available(task: str | None = None) -> list[str]:
    """Sorted names of registered losses, optionally only those for ``task``."""
    if task is not None and task not in TASKS:
        raise ValueError(f"available(task=...): expected one of {TASKS} or None, got {task!r}")
    return sorted(n for n in _REGISTRY if task is None or _TASK_OF[n] == task)


def loss_task(name: str) -> str:
    """The task ('segmentation' or 'detection') a registered loss belongs to."""
    _check_name(name)
    return _TASK_OF[name]


def get_loss_class(name: str) -> type[nn.Module]:
    """The class registered as ``name`` (``ValueError`` listing ``available()`` if unknown)."""
    _check_name(name)
    return _REGISTRY[name]


def build_loss(name: str, **kwargs) -> nn.Module:
    """Construct the loss registered as ``name`` with keyword arguments ``kwargs``.

    Raises:
        ValueError: an unknown name (listing ``available()``), or a keyword the loss does not
            accept (naming the loss and listing the keywords it accepts).
    """
    return get_loss_class(name)(**kwargs)


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ValueError(f"unknown loss {name!r}; available losses: {', '.join(available())}")

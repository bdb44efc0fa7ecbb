"""The loss registry: one decorated class per loss, looked up by name.

Adding a loss is one ``@register("name", task=...)`` class plus ``configs/loss/<name>.yaml``.
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
    _check_name(name)
    return _REGISTRY[name]


def build_loss(name: str, **kwargs) -> nn.Module:
    """Construct the loss registered as ``name`` with keyword arguments ``kwargs``."""
    return get_loss_class(name)(**kwargs)


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ValueError(f"unknown loss {name!r}; available losses: {', '.join(available())}")

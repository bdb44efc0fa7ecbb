"""lossbench losses: ``build_loss(name, **kw)``, ``available()``; see CONTRACTS section 3."""
from losses.registry import available, build_loss, get_loss_class, loss_task, register

__all__ = ["available", "build_loss", "get_loss_class", "loss_task", "register"]

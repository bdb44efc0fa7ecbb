"""lossbench losses: ``build_loss(name, **kw)``, ``available()``; see CONTRACTS section 3.

Importing a module registers its losses; every loss module is imported here.
"""
from losses import cldice, composite, distribution, lovasz, region, unified_focal  # noqa: F401  (registration side effects)
from losses import box  # noqa: F401  (registers box losses)
from losses.registry import available, build_loss, get_loss_class, loss_task, register

__all__ = ["available", "build_loss", "get_loss_class", "loss_task", "register"]

"""Loss keywords: the shared ones declared once, checked and renamed in one place.

Every loss constructor takes its own keywords (keyword-only, in its signature) plus ``**shared``: the
shared keywords it declares in ``shared_keywords``, whose names, defaults and meanings are the fields
of :class:`SharedOptions` (a loss may change a default through ``shared_defaults``). An unknown keyword
raises ``ValueError`` naming the loss and listing what it accepts; an old keyword name of
:data:`DEPRECATED_KEYWORDS` still works for one release and warns with ``DeprecationWarning``.
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Union

from torch import Tensor

ClassWeights = Union[None, str, Sequence[float], Tensor]


@dataclass(frozen=True)
class SharedOptions:
    """The keywords segmentation losses share; each has one name, one default and one meaning.

    Attributes:
        mode: ``"binary"`` | ``"multiclass"`` | ``"multilabel"`` (shapes in docs/losses.md).
        from_logits: the prediction holds logits (``True``) or probabilities in [0, 1].
        ignore_index: target value excluded from every term (numerators, denominators, means);
            its positions get exactly zero gradient.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        class_weights: ``None``, one weight per class (binary: background, foreground) or ``"auto"``
            (derived from the training split's class pixel counts, see ``set_class_counts``).
        weight_scheme: how ``"auto"`` weights are derived: ``inverse`` | ``inverse_sqrt`` |
            ``median_frequency`` | ``effective_number``.
        class_weight_beta: the β of the ``effective_number`` scheme (Cui et al. 2019), in (0, 1).
        include_background: ``False`` drops channel 0 (multiclass/multilabel) from the loss.
    """

    mode: str = "multiclass"
    from_logits: bool = True
    ignore_index: int | None = None
    reduction: str = "mean"
    class_weights: ClassWeights = None
    weight_scheme: str = "inverse"
    class_weight_beta: float = 0.9999
    include_background: bool = True


SHARED_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(SharedOptions)}

#: the shared keywords every segmentation loss accepts
COMMON = ("mode", "from_logits", "ignore_index", "reduction")
#: the shared keywords of a loss that takes class weights
CLASS_WEIGHTING = ("class_weights", "weight_scheme", "class_weight_beta")

#: old keyword -> new keyword; accepted for one release with a DeprecationWarning (timm-style), and
#: only where the old name is not a keyword of the loss itself (Tversky's ``beta`` is its FN weight)
DEPRECATED_KEYWORDS: dict[str, str] = {
    "beta": "class_weight_beta",
    "weight_beta": "class_weight_beta",
}


def own_keywords(cls: type, base: type) -> dict[str, Any]:
    """The keywords (with defaults) that ``cls`` and its ancestors up to ``base`` declare in their
    ``__init__`` signatures; ``**shared`` catch-alls are not keywords."""
    keywords: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[:cls.__mro__.index(base)]):
        if "__init__" not in vars(klass):
            continue
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                keywords[name] = p.default
    return keywords


def resolve_shared(cls: type, base: type, given: Mapping[str, Any], shared_keywords: Sequence[str],
                   defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The shared options of a ``cls`` instance: ``given`` (what reached ``base.__init__``) with
    deprecated names renamed, checked against ``shared_keywords``, completed with ``defaults``.

    Raises:
        ValueError: a keyword ``cls`` does not accept, or an old and a new name given together.
    """
    given = dict(given)
    own = own_keywords(cls, base)
    for old, new in DEPRECATED_KEYWORDS.items():
        if old in given and old not in own and new in shared_keywords:
            if new in given:
                raise ValueError(f"{loss_name(cls)}: got both {old!r} (deprecated) and {new!r}; "
                                 f"give only {new!r}")
            warnings.warn(f"{loss_name(cls)}: keyword {old!r} is deprecated and will be removed in "
                          f"the next release; use {new!r}", DeprecationWarning, stacklevel=4)
            given[new] = given.pop(old)
    unknown = sorted(set(given) - set(shared_keywords))
    if unknown:
        accepted = sorted(set(own) | set(shared_keywords))
        raise ValueError(f"{loss_name(cls)}: unsupported keyword(s) {', '.join(map(repr, unknown))}; "
                         f"it accepts: {', '.join(accepted)}")
    return {name: given.get(name, defaults[name]) for name in defaults}


def loss_name(cls: type) -> str:
    """``'dice' (losses.region.DiceLoss)`` for a registered loss, else the class's path."""
    path = f"{cls.__module__}.{cls.__qualname__}"
    registered = vars(cls).get("registry_name")
    return f"loss {registered!r} ({path})" if registered else path

"""The base class of every segmentation loss: the shared keywords (:mod:`losses.options`), class
weights (fixed or ``"auto"`` from pixel counts) and the two reductions (over pixels, over classes)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from common.checks import check_choice, check_range
from common.names import REDUCTIONS
from losses.class_weights import SCHEMES, weights_from_counts
from losses.inputs import MODES, SegInput
from losses.options import (CLASS_WEIGHTING, COMMON, SHARED_DEFAULTS, ClassWeights, own_keywords,
                            resolve_shared)

__all__ = ["ClassWeights", "SegmentationLoss"]


class SegmentationLoss(nn.Module):
    """Base of every segmentation loss: shared keywords, class weights, the two reductions.

    ``class_weights`` has one meaning in every loss: the loss is a *weighted mean* over classes
    (region losses: ``sum_c w_c L_c / sum_c w_c``) or over pixels weighted by their true class
    (pixel losses: ``sum_i w_{y_i} l_i / sum_i w_{y_i}``, as ``torch.nn.functional.cross_entropy``).
    Multiclass/multilabel weights have length C; binary weights have length 2 (background,
    foreground). ``"auto"`` derives them from the training split's class pixel counts with
    ``weight_scheme`` (see :mod:`losses.class_weights`) once :meth:`set_class_counts` is called.
    All computation runs in float32, also under bf16/fp16 autocast.

    A subclass declares its own keywords keyword-only in ``__init__`` and passes ``**shared`` on;
    ``shared_keywords`` lists the :class:`~losses.options.SharedOptions` it accepts and
    ``shared_defaults`` the defaults it changes. With ``from_logits=False`` the first
    :attr:`probability_checks` calls check that the prediction lies in [0, 1] (one host sync each);
    likewise the first :attr:`target_checks` calls check the target's values (class indices in
    ``[0, C)``, sigmoid targets in [0, 1], ``ignore_index`` aside) with one ``aminmax`` pass and a
    host sync each. Later out-of-range class indices still fail, in torch's indexing kernels (with
    torch's message); later sigmoid targets outside [0, 1] are no longer caught.
    """

    #: what :meth:`compute` reads from its :class:`SegInput` (the input's plan, see ``SegInput``)
    uses: frozenset[str] = frozenset()
    #: the shared keywords this loss accepts
    shared_keywords: tuple[str, ...] = COMMON + CLASS_WEIGHTING + ("include_background",)
    #: shared keywords whose default differs for this loss
    shared_defaults: Mapping[str, object] = {}
    #: number of forward calls that check ``from_logits=False`` probabilities (then no more syncs)
    probability_checks: int = 2
    #: number of forward calls that check the target's value range (a pass + a host sync each)
    target_checks: int = 2

    def __init__(self, **shared: object) -> None:
        super().__init__()
        options = resolve_shared(type(self), SegmentationLoss, shared, self.shared_keywords,
                                 {**SHARED_DEFAULTS, **self.shared_defaults})
        check_choice("mode", options["mode"], MODES)
        check_choice("reduction", options["reduction"], REDUCTIONS)
        check_choice("weight_scheme", options["weight_scheme"], SCHEMES)
        check_range("class_weight_beta", options["class_weight_beta"], 0.0, 1.0, low_open=True,
                    high_open=True)
        ignore_index = options["ignore_index"]
        if ignore_index is not None and (not isinstance(ignore_index, int) or isinstance(ignore_index, bool)):
            raise ValueError(f"ignore_index must be an int or None, got {ignore_index!r}")
        self.mode: str = options["mode"]
        self.from_logits = bool(options["from_logits"])
        self.ignore_index: int | None = ignore_index
        self.include_background = bool(options["include_background"])
        self.reduction: str = options["reduction"]
        self.weight_scheme: str = options["weight_scheme"]
        self.class_weight_beta = float(options["class_weight_beta"])
        self._probability_checks_left = self.probability_checks
        self._target_checks_left = self.target_checks
        class_weights = options["class_weights"]
        self._auto_weights = isinstance(class_weights, str)
        if self._auto_weights and class_weights != "auto":
            raise ValueError(f"class_weights must be None, 'auto' or a list of per-class weights, "
                             f"got {class_weights!r}")
        # not persistent: explicit weights come from the config, "auto" ones from the data at every
        # start, so a checkpoint loads whether or not the weights were resolved when it was saved
        self.register_buffer("class_weights", None if class_weights is None or self._auto_weights
                             else _as_weights(class_weights), persistent=False)

    @classmethod
    def keyword_defaults(cls) -> dict[str, object]:
        """Every keyword this loss accepts, with its default (what its YAML file must show)."""
        shared = {**SHARED_DEFAULTS, **cls.shared_defaults}
        return {**{k: shared[k] for k in cls.shared_keywords}, **own_keywords(cls, SegmentationLoss)}

    @classmethod
    def accepts(cls, keyword: str) -> bool:
        """Whether the constructor takes ``keyword`` (own or shared; deprecated names excluded)."""
        return keyword in cls.shared_keywords or keyword in own_keywords(cls, SegmentationLoss)

    @property
    def requires_class_counts(self) -> bool:
        return self._auto_weights and self.class_weights is None

    def set_class_counts(self, counts: Tensor) -> None:
        """Resolve ``class_weights="auto"`` from per-class training pixel counts ``(C,)``."""
        if self._auto_weights:
            self.class_weights = weights_from_counts(counts, self.weight_scheme, self.class_weight_beta)

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        with torch.autocast(device_type=prediction.device.type, enabled=False):
            return self.compute(self.prepare(prediction, target, self.uses))

    def prepare(self, prediction: Tensor, target: Tensor, plan: frozenset[str]) -> SegInput:
        """The validated input of one forward call; ``plan`` = what the coming terms read."""
        check = not self.from_logits and self._probability_checks_left > 0
        check_target = self._target_checks_left > 0
        inp = SegInput(prediction, target, self.mode, self.from_logits, self.ignore_index, plan=plan,
                       check_probabilities=check, check_target=check_target)
        # only a call that passed its checks counts towards them
        self._probability_checks_left -= check
        self._target_checks_left -= check_target
        return inp

    def compute(self, inp: SegInput) -> Tensor:
        raise NotImplementedError

    def weights_for(self, inp: SegInput) -> Tensor | None:
        """The class weights checked against the input's classes (``None`` if unweighted)."""
        if self.requires_class_counts:
            raise ValueError("class_weights='auto' needs set_class_counts(counts) before the "
                             "first forward call")
        w = self.class_weights
        if w is None:
            return None
        expected = 2 if inp.mode == "binary" else inp.num_channels
        if w.numel() != expected:
            raise ValueError(f"class_weights: expected {expected} weights for {inp.mode} mode with "
                             f"{inp.num_channels} channel(s), got {w.numel()}")
        return w.to(inp.scores.device, inp.scores.dtype)

    def reduce_classes(self, per_class: Tensor, inp: SegInput) -> Tensor:
        """Reduce a per-class loss ``(N, C)`` or ``(C,)`` with weights, background and reduction."""
        w = self.weights_for(inp)
        if w is not None and inp.mode == "binary":
            w = w[1:]
        if not self.include_background and inp.mode != "binary":
            per_class = per_class[..., 1:]
            w = None if w is None else w[1:]
        if w is not None:
            per_class = per_class * w
        if self.reduction == "none":
            return per_class
        if self.reduction == "sum":
            return per_class.sum()
        if per_class.numel() == 0:
            return per_class.sum()
        if w is None:
            return per_class.mean()
        denom = w.sum() * (per_class.numel() // max(w.numel(), 1))
        return per_class.sum() / denom.clamp_min(1e-12)

    def reduce_pixels(self, loss_map: Tensor, inp: SegInput, pixel_weights: Tensor | None) -> Tensor:
        """Reduce a per-position loss shaped like ``inp.target``: weighted mean over valid positions.

        ``pixel_weights`` (same shape or ``None``) already carries class weights and the ignore
        mask; ``none`` returns the map in the prediction's layout with ignored positions at 0.
        """
        if pixel_weights is not None:
            loss_map = loss_map * pixel_weights
        if self.reduction == "none":
            return self._unflatten(loss_map, inp)
        return self.reduce_pixel_sum(loss_map.sum(), pixel_weights, loss_map.numel())

    def reduce_pixel_sum(self, total: Tensor, pixel_weights: Tensor | None, positions: int) -> Tensor:
        """``sum`` / ``mean`` reduction of a pixel loss already summed (with ``pixel_weights``) over
        ``positions`` positions: the mean divides by the summed weights."""
        if self.reduction == "sum":
            return total
        count = pixel_weights.sum() if pixel_weights is not None else total.new_tensor(float(positions))
        # an all-ignored batch has total == 0, so the clamp yields 0 (with a gradient), never NaN
        return total / count.clamp_min(1e-12)

    def _unflatten(self, loss_map: Tensor, inp: SegInput) -> Tensor:
        n = loss_map.shape[0]
        if inp.mode == "multiclass":
            return loss_map.reshape(n, *inp.spatial_shape)
        return loss_map.reshape(n, loss_map.shape[1], *inp.spatial_shape)

    def pixel_weights(self, inp: SegInput) -> Tensor | None:
        """Per-position weights ``w_{y_i}`` times the valid mask (``None`` when all are 1).

        Multiclass: ``(N, P)`` indexed by the true class (background pixels dropped when
        ``include_background=False``). Sigmoid modes: ``(N, C, P)``; binary weights blend
        background/foreground by the (soft) target, multilabel weights scale each channel.
        """
        w = self.weights_for(inp)
        valid = inp.valid_float
        if inp.mode == "multiclass":
            if not self.include_background:
                keep = (inp.target != 0).to(inp.scores.dtype)
                valid = keep if valid is None else valid * keep
            # index_select is a plain gather; advanced indexing w[target] is several times slower on CPU
            pw = None if w is None else w.index_select(0, inp.target.flatten()).view_as(inp.target)
        else:
            t = inp.target
            if w is None:
                pw = None
            elif inp.mode == "binary":
                pw = w[0] + (w[1] - w[0]) * t
            else:
                pw = w.view(1, -1, 1).expand_as(t)
            if not self.include_background and inp.mode == "multilabel":
                keep = torch.ones_like(inp.scores[:1, :, :1])
                keep[:, 0] = 0.0
                valid = keep.expand_as(inp.scores) if valid is None else valid * keep
        if pw is None:
            return valid
        return pw if valid is None else pw * valid


def _as_weights(value: Sequence[float] | Tensor) -> Tensor:
    weights = torch.as_tensor([float(v) for v in value], dtype=torch.float32) \
        if not torch.is_tensor(value) else value.detach().float().flatten()
    if weights.numel() == 0 or not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ValueError(f"class_weights must be a non-empty list of finite, non-negative numbers, "
                         f"got {weights.tolist()}")
    return weights

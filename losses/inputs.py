"""Input preparation of the segmentation losses: :class:`SegInput`, mode handling, ignore masks and
one-hot-free per-class sums.

Every segmentation loss turns its ``(prediction, target)`` pair into one :class:`SegInput` and computes
from it; a composite builds one :class:`SegInput` and hands it to all of its terms, so softmax /
log-softmax and the per-class sums are computed once per forward (cached on the input, in a way the
input plans at construction from what its terms announce). The checks live in
:mod:`losses.validation`, the hand-written autograd nodes in :mod:`losses.fused`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from losses import validation
from losses.fused import class_sums, softmax_class_stats, target_log_softmax

MODES = ("binary", "multiclass", "multilabel")
#: the quantities a loss term may announce in its ``uses`` (the ``SegInput`` plan)
PLANNABLE = frozenset({"probs", "log_probs", "log_prob_of_target", "class_stats"})


class SegInput:
    """A validated, flattened ``(prediction, target)`` pair in float32 (float64 stays float64).

    Attributes (``P`` = number of spatial positions, ``C`` = channels of the prediction):

    - ``scores``: ``(N, C, P)`` float32 logits (or probabilities when ``from_logits=False``);
      binary mode always has ``C == 1``. Ignored positions hold 0 (``masked_fill``, never a
      product), so a NaN or infinite value there reaches no sum and gets exactly zero gradient.
    - ``target``: multiclass ``(N, P)`` int64 class indices with ignored positions set to 0;
      binary/multilabel ``(N, C, P)`` float32 in [0, 1] with ignored positions set to 0.
    - ``valid``: ``None`` when nothing is ignored, else a bool mask shaped like ``target``.
    - ``plan``: what the loss terms about to run will read (``probs``, ``log_probs``,
      ``log_prob_of_target``, ``class_stats``), fixed at construction. It decides how each
      quantity is computed — e.g. one autograd node for a multiclass composite's softmax sums and
      ``log p_y``, or ``probs = exp(log_probs)`` when both are read — so a value never depends on
      the order in which terms ask for it.
    - ``probs`` / ``log_probs`` / ``log_one_minus_probs`` / ``log_prob_of_target`` /
      ``class_stats(squared)`` / ``squared_errors()``: computed on first use, then cached in an
      explicit per-input cache; :meth:`cached` says whether one has been computed.
    """

    def __init__(self, prediction: Tensor, target: Tensor, mode: str, from_logits: bool,
                 ignore_index: int | None, plan: frozenset[str] = frozenset(),
                 check_probabilities: bool = False, check_target: bool = True) -> None:
        if not torch.is_tensor(prediction) or not prediction.is_floating_point():
            raise ValueError(f"prediction must be a floating-point tensor, got "
                             f"{getattr(prediction, 'dtype', type(prediction))}")
        if not torch.is_tensor(target):
            raise ValueError(f"target must be a tensor, got {type(target).__name__}")
        unknown = set(plan) - PLANNABLE
        if unknown:
            raise ValueError(f"plan: unknown quantities {sorted(unknown)}; expected a subset of {sorted(PLANNABLE)}")
        self.mode = mode
        self.from_logits = from_logits
        self.plan = frozenset(plan)
        self._cache: dict[str, object] = {}
        if prediction.dtype in (torch.float16, torch.bfloat16):
            prediction = prediction.float()  # float64 stays float64 (gradcheck)
        if mode == "binary":
            prediction, target = validation.binary_shapes(prediction, target)
        elif prediction.dim() < 3:
            raise ValueError(f"prediction: {mode} mode expects (N, C, *S) with 1-3 spatial dims, "
                             f"got shape {tuple(prediction.shape)}")
        if prediction.dim() > 5:
            raise ValueError(f"prediction: at most 3 spatial dims are supported, got shape "
                             f"{tuple(prediction.shape)}")
        self.spatial_shape = tuple(prediction.shape[2:])
        n, c = prediction.shape[:2]
        scores = prediction.reshape(n, c, -1)
        if mode == "multiclass":
            self.target, self.valid = validation.multiclass_target(target, prediction.shape, ignore_index, check_target)
        else:
            self.target, self.valid = validation.sigmoid_target(target, prediction.shape, ignore_index, mode, check_target)
            self.target = self.target.to(prediction.dtype)
        if self.valid is not None:
            scores = scores.masked_fill(~self._channel_mask(), 0.0)
        self.scores = scores
        if check_probabilities and not from_logits:
            validation.check_probabilities(scores, self.valid is not None)

    def _channel_mask(self) -> Tensor:
        """``valid`` broadcastable to ``(N, C, P)``."""
        return self.valid.unsqueeze(1) if self.mode == "multiclass" else self.valid

    @property
    def num_channels(self) -> int:
        return self.scores.shape[1]

    def planned(self, name: str) -> bool:
        """Whether the plan says a term will read ``name``."""
        return name in self.plan

    def cached(self, name: str) -> bool:
        """Whether ``name`` has been computed for this input already."""
        return name in self._cache

    def _get(self, name: str, compute: Callable[[], object]) -> object:
        if name not in self._cache:
            self._cache[name] = compute()
        return self._cache[name]

    @property
    def _dense_log_softmax(self) -> bool:
        """Multiclass from logits: the plan reads the full log-softmax, or the probabilities as well
        as ``log p_y``, so one log-softmax serves all (``probs`` = its exp)."""
        return self.mode == "multiclass" and self.from_logits and (
            "log_probs" in self.plan or {"probs", "log_prob_of_target"} <= self.plan)

    @property
    def _fused_softmax_node(self) -> bool:
        """Multiclass from logits: one softmax node gives both the class sums and ``log p_y``."""
        return self.mode == "multiclass" and self.from_logits and \
            {"class_stats", "log_prob_of_target"} <= self.plan and not {"probs", "log_probs"} & self.plan

    @property
    def log_prob_of_target(self) -> Tensor:
        """Multiclass ``log p_y`` per position, ``(N, P)``.

        From logits and without a planned log-softmax, a hand-written autograd function saves no
        ``(N, C, P)`` tensor (torch's cross-entropy keeps the whole log-softmax for backward).
        """
        def compute() -> Tensor:
            index = self.target.unsqueeze(1)
            if not self.from_logits:
                return self.scores.gather(1, index).squeeze(1).clamp_min(1e-12).log()
            if self._dense_log_softmax:
                return self.log_probs.gather(1, index).squeeze(1)
            if self._fused_softmax_node:
                return self._softmax_node()[3]
            return target_log_softmax(self.scores, self.target)
        return self._get("log_prob_of_target", compute)

    def _softmax_node(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self._get("softmax_node", lambda: softmax_class_stats(
            self.scores, self.target, self.valid_float, self._fused_softmax_node))

    @property
    def log_probs(self) -> Tensor:
        def compute() -> Tensor:
            if not self.from_logits:
                return self.probs.clamp_min(1e-12).log()
            if self.mode == "multiclass":
                return F.log_softmax(self.scores, dim=1)
            return F.logsigmoid(self.scores)
        return self._get("log_probs", compute)

    @property
    def probs(self) -> Tensor:
        def compute() -> Tensor:
            if not self.from_logits:
                return self.scores
            if self.mode == "multiclass":
                # exp of a log-softmax the plan needs anyway costs less than a second softmax
                return self.log_probs.exp() if self._dense_log_softmax else F.softmax(self.scores, dim=1)
            return torch.sigmoid(self.scores)
        return self._get("probs", compute)

    @property
    def log_one_minus_probs(self) -> Tensor:
        """log(1 - p) for the sigmoid modes, computed stably from logits."""
        def compute() -> Tensor:
            if not self.from_logits:
                return (1.0 - self.scores).clamp_min(1e-12).log()
            return F.logsigmoid(-self.scores)
        return self._get("log_one_minus_probs", compute)

    @property
    def valid_float(self) -> Tensor | None:
        if self.valid is None:
            return None
        return self._get("valid_float", lambda: self.valid.to(self.scores.dtype))

    def class_stats(self, squared: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample, per-class soft sums ``(tp, sum_pred, sum_target)``, each ``(N, C)``.

        ``tp = sum_i p_ci t_ci``, ``sum_pred = sum_i p_ci`` (``p_ci**2`` when squared),
        ``sum_target = sum_i t_ci`` (``t_ci**2`` when squared), over non-ignored positions.
        Multiclass mode never builds a one-hot target: ``tp`` gathers the probability of the true
        class and sums it per class (``fused.class_sums``), ``sum_target`` is a per-sample bincount; from
        logits, softmax and sums are one autograd node with a hand-written backward unless the
        plan reads the probabilities anyway. Cached, so the region terms of a composite share one
        computation.
        """
        def compute() -> tuple[Tensor, Tensor, Tensor]:
            if self.mode == "multiclass" and self.from_logits and not squared and \
                    not {"probs", "log_probs"} & self.plan:
                return self._softmax_node()[:3]
            if self.mode == "multiclass":
                return self._multiclass_stats(self.probs, squared)
            return self._sigmoid_stats(squared)
        return self._get(f"class_stats_{squared}", compute)

    def squared_errors(self) -> tuple[Tensor, Tensor]:
        """Per-sample, per-class ``(sum_i relu(p - t)^2, sum_i relu(t - p)^2)``, each ``(N, C)``.

        The squared counterparts of FP and FN: both >= 0, both 0 exactly at ``p = t`` (also for
        soft targets), and they sum to ``sum (p - t)^2 = sum p^2 + sum t^2 - 2 TP``, so squared
        Tversky with ``alpha = beta = 1/2`` is squared Dice.
        """
        def compute() -> tuple[Tensor, Tensor]:
            if self.mode == "multiclass":
                # one-hot t: FP2_c = sum_{y != c} p_c^2 = sum p_c^2 - Q_c, FN2_c = n_c - 2 TP_c + Q_c,
                # Q_c = sum_{y = c} p_c^2
                p = self.probs
                tp, p2_sum, n_c = self.class_stats(True)
                p_true = p.gather(1, self.target.unsqueeze(1)).squeeze(1)
                q_true = p_true * p_true
                if self.valid is not None:
                    q_true = q_true * self.valid_float
                q = class_sums(self.target, q_true, tp.shape[1])
                return (p2_sum - q).clamp_min(0.0), (n_c - 2.0 * tp + q).clamp_min(0.0)
            d = self.probs - self.target
            over, under = F.relu(d).square(), F.relu(-d).square()
            if self.valid is not None:
                over, under = over * self.valid_float, under * self.valid_float
            return over.sum(-1), under.sum(-1)
        return self._get("squared_errors", compute)

    def _sigmoid_stats(self, squared: bool) -> tuple[Tensor, Tensor, Tensor]:
        p, t = self.probs, self.target  # ignored positions already hold 0 in target
        pp = p * p if squared else p
        p_sum = pp.sum(-1) if self.valid is None else torch.einsum("ncp,ncp->nc", pp, self.valid_float)
        tp = torch.einsum("ncp,ncp->nc", p, t)
        t_sum = (t * t).sum(-1) if squared else t.sum(-1)
        return tp, p_sum, t_sum

    def _multiclass_stats(self, p: Tensor, squared: bool) -> tuple[Tensor, Tensor, Tensor]:
        n, c, _ = p.shape
        index = self.target.unsqueeze(1)  # (N, 1, P)
        p_true = p.gather(1, index).squeeze(1)  # (N, P)
        ones = p.new_ones(()) if self.valid is None else self.valid_float
        if self.valid is not None:
            p_true = p_true * ones
        tp = class_sums(self.target, p_true, c)
        t_sum = class_sums(self.target, ones, c)
        pp = p * p if squared else p
        if self.valid is None:
            p_sum = pp.sum(-1)
        else:
            # batched mat-vec: sums the masked probabilities without a (N, C, P) temporary
            p_sum = torch.bmm(pp, ones.unsqueeze(-1)).squeeze(-1)
        return tp, p_sum, t_sum

    def valid_counts(self) -> Tensor:
        """Number of non-ignored positions per sample and channel, ``(N, C)``."""
        n, c, p = self.scores.shape
        if self.valid is None:
            return self.scores.new_full((n, c), float(p))
        counts = self.valid_float.sum(-1)
        return counts.unsqueeze(1).expand(n, c) if self.mode == "multiclass" else counts

    def hard_target_one_hot(self) -> Tensor:
        """``(N, C, P)`` float target; only for losses that need the dense map (e.g. clDice)."""
        if self.mode != "multiclass":
            return self.target
        one_hot = torch.zeros_like(self.scores).scatter_(1, self.target.unsqueeze(1), 1.0)
        return one_hot if self.valid is None else one_hot * self.valid_float.unsqueeze(1)

"""Forward+backward time and autograd memory of every segmentation loss vs. its peer implementations.

    python benchmarks/loss_speed.py [--reps 15] [--cases 2d_c8,2d_c21,3d_c4] [--threads 1]

For each case (N, C, spatial) and loss, every implementation gets identical logits/targets. Time is
the CPU time of this process (``time.process_time``, one intra-op thread) of a forward+backward
pass after one warm-up, over ``--reps`` rounds that run every implementation once, interleaved: on a
machine shared with other jobs, wall-clock time mostly measures the scheduler, CPU time measures
the work. The time ratio is the median over rounds of ours / the fastest peer *in the same round*
(both see the same machine state), with a distribution-free 95 % interval for that median (order
statistics of Binomial(reps, 1/2); needs ``--reps`` >= 6); ``ours ms`` / ``peer ms`` are the fastest
rounds. Memory is the size of the
tensors autograd saves for the backward pass (distinct storages, excluding the logits and the
target themselves), counted with ``torch.autograd.graph.saved_tensors_hooks``: it is the memory a
loss adds to a training step's activation peak, it is deterministic, and it works on CPU where
torch has no allocator statistics. Ratios are ours / fastest (resp. lightest) peer; absolute
times are noise on a shared machine, ratios measured in the same run are what matter.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from losses import build_loss  # noqa: E402

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

CASES = {"2d_c8": (8, 8, (256, 256)), "2d_c21": (8, 21, (256, 256)), "3d_c4": (2, 4, (64, 64, 64))}
BINARY = {"bce", "mcc"}


def _one_hot(t: torch.Tensor, c: int) -> torch.Tensor:
    return F.one_hot(t, c).movedim(-1, 1).float()


def peers(name: str, c: int, dims: int) -> dict[str, LossFn]:
    """Peer implementations of loss ``name`` taking (logits, target) in our layout."""
    import kornia.losses as K
    import monai.losses as M
    import segmentation_models_pytorch.losses as S

    mc = dict(softmax=True, to_onehot_y=True)
    monai = lambda loss: (lambda x, t: loss(x, t.unsqueeze(1)))  # noqa: E731
    table: dict[str, dict[str, LossFn]] = {
        "ce": {"torch": lambda x, t: F.cross_entropy(x, t),
               "smp": S.SoftCrossEntropyLoss(smooth_factor=0.0)},
        "weighted_ce": {"torch": lambda x, t: F.cross_entropy(x, t, weight=torch.linspace(0.5, 2.0, c))},
        "bce": {"torch": lambda x, t: F.binary_cross_entropy_with_logits(x, t.unsqueeze(1).float()),
                "smp": lambda x, t: S.SoftBCEWithLogitsLoss()(x, t.unsqueeze(1).float())},
        "focal": {"monai": monai(M.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0)),
                  "kornia": lambda x, t: K.focal_loss(x, t, alpha=None, gamma=2.0, reduction="mean")},
        "dice": {"monai": monai(M.DiceLoss(**mc)), "smp": S.DiceLoss("multiclass"),
                 "kornia": lambda x, t: K.dice_loss(x, t, average="macro")},
        "jaccard": {"monai": monai(M.DiceLoss(**mc, jaccard=True)), "smp": S.JaccardLoss("multiclass")},
        "tversky": {"monai": monai(M.TverskyLoss(**mc, alpha=0.3, beta=0.7)),
                    "smp": S.TverskyLoss("multiclass", alpha=0.3, beta=0.7),
                    "kornia": lambda x, t: K.tversky_loss(x, t, alpha=0.3, beta=0.7)},
        "focal_tversky": {"smp": S.TverskyLoss("multiclass", alpha=0.3, beta=0.7, gamma=0.75)},
        "generalized_dice": {"monai": monai(M.GeneralizedDiceLoss(**mc))},
        "mcc": {"smp": lambda x, t: S.MCCLoss()(torch.sigmoid(x), t.unsqueeze(1).float())},
        "lovasz": {"smp": S.LovaszLoss("multiclass")},
        # kornia sorts per image and averages all classes: our per_image=True is its counterpart
        "lovasz_per_image": {"smp": S.LovaszLoss("multiclass", per_image=True),
                             "kornia": lambda x, t: K.lovasz_softmax_loss(x, t)},
        "cldice": {"monai": lambda x, t: M.SoftDiceclDiceLoss(softmax=True, include_background=False)(
            x, _one_hot(t, c))},
        "dice_ce": {"monai": monai(M.DiceCELoss(**mc))},
        "dice_focal": {"monai": monai(M.DiceFocalLoss(**mc, gamma=2.0))},
        "topk_ce": {},
        "unified_focal": {},
    }
    found = table[name]
    if dims != 2:  # kornia's segmentation losses are 2-D only
        found = {k: v for k, v in found.items() if k != "kornia"}
    return found


def ours(name: str, c: int) -> LossFn:
    mode = "binary" if name in BINARY else "multiclass"
    if name == "lovasz_per_image":
        return build_loss("lovasz", mode=mode, per_image=True)
    loss = build_loss(name, mode=mode)
    if loss.requires_class_counts:
        loss.set_class_counts(torch.arange(1, c + 1, dtype=torch.float64))
    if name == "weighted_ce":
        loss = build_loss("ce", mode=mode, class_weights=torch.linspace(0.5, 2.0, c).tolist())
    return loss


def step_time(fn: LossFn, logits: torch.Tensor, target: torch.Tensor) -> float:
    x = logits.detach().requires_grad_()
    start = time.process_time()
    fn(x, target).backward()
    return time.process_time() - start


def saved_mib(fn: LossFn, logits: torch.Tensor, target: torch.Tensor) -> float:
    """MiB of distinct storages autograd saves for backward, other than the logits and target."""
    x = logits.detach().requires_grad_()
    skip = {t.untyped_storage().data_ptr() for t in (logits, target, x)}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = fn(x, target)
    value.backward()
    return sum(saved.values()) / 2**20


def measure(impls: dict[str, LossFn], logits: torch.Tensor, target: torch.Tensor, reps: int
            ) -> dict[str, tuple[list[float], float]]:
    """{name: (forward+backward seconds per round, MiB saved)}; the rounds run every implementation
    once, interleaved, so load spikes on a shared machine hit them alike and round r of two
    implementations can be compared with each other."""
    usable = {}
    for name, fn in impls.items():
        try:
            step_time(fn, logits, target)  # warm-up; a peer that rejects the case is reported, not fatal
            usable[name] = fn
        except Exception as error:
            print(f"  {name}: {type(error).__name__}: {error}", file=sys.stderr)
    times: dict[str, list[float]] = {name: [] for name in usable}
    for _ in range(reps):
        for name, fn in usable.items():
            times[name].append(step_time(fn, logits, target))
    return {name: (times[name], saved_mib(fn, logits, target)) for name, fn in usable.items()}


def paired_ratio(ours: list[float], peer: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Median of the per-round ratios ``ours[r] / peer[r]`` and a distribution-free ``level``
    interval for it: order statistics ``(X_(k), X_(n-k+1))`` with the largest ``k`` such that
    ``2 P(Binomial(n, 1/2) <= k - 1) <= 1 - level`` (NaN bounds when ``n`` is too small for any)."""
    if len(ours) != len(peer) or not ours:
        raise ValueError(f"paired_ratio: needs equally many rounds, got {len(ours)} and {len(peer)}")
    ratios = sorted(o / p for o, p in zip(ours, peer))
    n = len(ratios)
    k, tail = 0, 0.0
    while True:  # tail = P(B <= k) for B ~ Binomial(n, 1/2)
        tail += math.comb(n, k) / 2**n
        if 2 * tail > 1 - level:
            break
        k += 1
    if k == 0:
        return statistics.median(ratios), math.nan, math.nan
    return statistics.median(ratios), ratios[k - 1], ratios[n - k]


def ratio_parser(description: str, cases: str, losses: str) -> argparse.ArgumentParser:
    """The options of the paired-ratio scripts (this one, fused_bound.py, donated_backward.py)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=15, help="rounds; >= 6 for a 95 %% interval")
    parser.add_argument("--cases", default=cases)
    parser.add_argument("--losses", default=losses)
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads; 1 by default: on a loaded machine multi-threaded timings "
                             "measure scheduler stalls (one per op), not the work")
    return parser


def report(lines: list[str], *new: str) -> None:
    """Append ``new`` lines to a script's returned report and print them as they come."""
    lines.extend(new)
    print("\n".join(new), flush=True)


def multiclass_inputs(case: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded multiclass ``(logits, target)`` of ``CASES[case]``, logits scaled by 3."""
    n, c, spatial = CASES[case]
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, c, *spatial, generator=g) * 3, torch.randint(0, c, (n, *spatial), generator=g)


def run(case: str, reps: int, names: list[str]) -> None:
    """Print one table row per loss for ``case``."""
    n, c, spatial = CASES[case]
    g = torch.Generator().manual_seed(0)
    for name in names:
        channels = 1 if name in BINARY else c
        logits = torch.randn(n, channels, *spatial, generator=g)
        target = torch.randint(0, 2 if name in BINARY else c, (n, *spatial), generator=g)
        if name == "cldice" and case == "2d_c21":
            continue  # soft skeletons of 21 classes: minutes on 2 cores, nothing new to learn
        results = measure({"ours": ours(name, c), **peers(name, c, len(spatial))}, logits, target, reps)
        t_ours, m_ours = results.pop("ours")
        if not results:
            print(f"{case:7} {name:17} {'(no peer)':>13} {min(t_ours) * 1e3:8.1f} {'':>8} {'':>17} "
                  f"{m_ours:8.1f} {'':>8} {'':>6}", flush=True)
            continue
        fast_peer = min(results, key=lambda k: min(results[k][0]))
        light_peer = min(results, key=lambda k: results[k][1])
        t_peer, m_peer = results[fast_peer][0], results[light_peer][1]
        ratio, low, high = paired_ratio(t_ours, t_peer)
        print(f"{case:7} {name:17} {fast_peer + '/' + light_peer:>13} {min(t_ours) * 1e3:8.1f} "
              f"{min(t_peer) * 1e3:8.1f} {ratio:5.2f} [{low:4.2f}, {high:4.2f}] {m_ours:8.1f} {m_peer:8.1f} "
              f"{m_ours / max(m_peer, 1e-9):6.2f}", flush=True)


def main() -> None:
    parser = ratio_parser(__doc__, ",".join(CASES), "ce,weighted_ce,bce,focal,dice,jaccard,tversky,focal_tversky,"
                          "generalized_dice,mcc,lovasz,lovasz_per_image,cldice,dice_ce,dice_focal,topk_ce,unified_focal")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    header = (f"{'case':7} {'loss':17} {'peer t/m':>13} {'ours ms':>8} {'peer ms':>8} {'t ratio [95% CI]':>17} "
              f"{'ours MiB':>8} {'peer MiB':>8} {'m ratio':>6}")
    print(f"torch {torch.__version__}, {args.threads} threads, {args.reps} interleaved rounds; "
          f"cases (N, C, spatial): {', '.join(f'{k}={v}' for k, v in CASES.items())}")
    print("peer t/m: fastest peer / lightest peer; t ratio: median over rounds of ours / fastest peer in "
          "that round, 95 % interval of the median; ms: fastest round; m ratio: ours / lightest peer "
          "(< 1: ours is better)")
    print(header)
    for case in args.cases.split(","):
        run(case, args.reps, args.losses.split(","))


if __name__ == "__main__":
    main()

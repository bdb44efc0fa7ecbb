"""Box-loss speed: our giou/diou/ciou against torchvision.ops on the same box pairs, fwd + bwd.

Prints one table of median times and the ratio ours / torchvision (lower is better; the target is
<= 1.0). Absolute times depend on the machine and its load; only the ratios measured side by side
in one run are meaningful.

    python benchmarks/box_loss_speed.py [--pairs 100000] [--repeats 15]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torchvision.ops as tv_ops

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from losses import build_loss  # noqa: E402

PEERS: dict[str, Callable[..., torch.Tensor]] = {
    "giou": tv_ops.generalized_box_iou_loss,
    "diou": tv_ops.distance_box_iou_loss,
    "ciou": tv_ops.complete_box_iou_loss,
}


def random_pairs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def boxes() -> torch.Tensor:
        xy = torch.rand(n, 2, generator=g) * 512
        return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 64 + 1], dim=1)

    return boxes(), boxes()


def fwd_bwd_seconds(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], pred: torch.Tensor,
                    target: torch.Tensor) -> float:
    p = pred.clone().requires_grad_()
    start = time.perf_counter()
    fn(p, target).backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    pred, target = random_pairs(args.pairs)

    print(f"box-loss fwd+bwd on {args.pairs} pairs, float32, CPU, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved calls each; torch {torch.__version__}")
    print(f"{'loss':<6} {'ours ms':>9} {'torchvision ms':>15} {'ratio(min)':>11} {'ratio(median)':>14}")
    for name, peer in PEERS.items():
        ours = build_loss(name, reduction="sum")
        sides = {"ours": ours, "peer": lambda p, t, peer=peer: peer(p, t, reduction="sum")}
        for fn in sides.values():  # warm-up: allocator, first-call dispatch
            fwd_bwd_seconds(fn, pred, target)
        times: dict[str, list[float]] = {"ours": [], "peer": []}
        # Alternate the two sides call by call so load changes on a shared machine hit both alike;
        # the minimum is the least disturbed call.
        for _ in range(args.repeats):
            for side, fn in sides.items():
                times[side].append(fwd_bwd_seconds(fn, pred, target))
        a, b = min(times["ours"]), min(times["peer"])
        ratio_median = statistics.median(times["ours"]) / statistics.median(times["peer"])
        print(f"{name:<6} {a * 1e3:>9.2f} {b * 1e3:>15.2f} {a / b:>11.2f} {ratio_median:>14.2f}")


if __name__ == "__main__":
    main()

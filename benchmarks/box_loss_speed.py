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
                    target: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats + 2):
        p = pred.clone().requires_grad_()
        start = time.perf_counter()
        fn(p, target).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])  # the first two calls warm up the allocator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    pred, target = random_pairs(args.pairs)

    print(f"box-loss fwd+bwd on {args.pairs} pairs, float32, CPU, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}; torch {torch.__version__}")
    print(f"{'loss':<6} {'ours ms':>9} {'torchvision ms':>15} {'ratio':>7}")
    for name, peer in PEERS.items():
        ours = build_loss(name, reduction="sum")
        # interleave so that load drifts hit both sides alike
        t_ours, t_peer = [], []
        for _ in range(3):
            t_ours.append(fwd_bwd_seconds(ours, pred, target, args.repeats // 3 or 1))
            t_peer.append(fwd_bwd_seconds(lambda p, t: peer(p, t, reduction="sum"), pred, target, args.repeats // 3 or 1))
        a, b = min(t_ours), min(t_peer)
        print(f"{name:<6} {a * 1e3:>9.2f} {b * 1e3:>15.2f} {a / b:>7.2f}")


if __name__ == "__main__":
    main()

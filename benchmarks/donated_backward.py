"""What the donated backward buffer buys: our losses' forward+backward as in training (the graph is
dropped after ``backward()``, so the softmax nodes write their gradient into the saved
probabilities / log-softmax) vs the same losses with ``backward(retain_graph=True)``, where the
nodes must leave the saved tensors intact and allocate a fresh ``(N, C, P)`` gradient.

    python benchmarks/donated_backward.py [--reps 15] [--cases 2d_c8,2d_c21,3d_c4] [--losses ce,dice]

Same method as ``benchmarks/loss_speed.py`` (CPU time of one thread, interleaved rounds, paired
median of per-round ratios donated / kept with its 95 % interval): both variants run the same code
up to the last step, in the same process, so the ratio isolates the buffer reuse.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling loss_speed.py (benchmarks/ is no package)
import loss_speed as speed  # noqa: E402


class _KeptGraph:
    """A loss value whose ``backward()`` keeps the graph (``retain_graph=True``)."""

    def __init__(self, value: torch.Tensor):
        self.value = value

    def backward(self) -> None:
        self.value.backward(retain_graph=True)


def main(argv: list[str] | None = None) -> str:
    args = speed.ratio_parser(__doc__, "2d_c8,2d_c21,3d_c4", "ce,weighted_ce,dice,generalized_dice,dice_ce"
                              ).parse_args(argv)
    torch.set_num_threads(args.threads)
    lines: list[str] = []
    speed.report(lines, f"torch {torch.__version__}, {args.threads} thread(s), {args.reps} interleaved rounds; t ratio: "
                        f"median over rounds of donated / kept (retain_graph=True) in that round [95 % interval]",
                 f"{'case':7} {'loss':17} {'donated ms':>10} {'kept ms':>8} {'t ratio [95% CI]':>18}")
    for case in args.cases.split(","):
        c = speed.CASES[case][1]
        logits, target = speed.multiclass_inputs(case)
        for name in args.losses.split(","):
            loss = speed.ours(name, c)
            impls = {"donated": loss, "kept": lambda x, t, loss=loss: _KeptGraph(loss(x, t))}
            times = {k: v[0] for k, v in speed.measure(impls, logits, target, args.reps).items()}
            ratio, low, high = speed.paired_ratio(times["donated"], times["kept"])
            row = (f"{case:7} {name:17} {min(times['donated']) * 1e3:10.1f} {min(times['kept']) * 1e3:8.1f} "
                   f"{ratio:6.2f} [{low:4.2f}, {high:4.2f}]")
            speed.report(lines, row)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

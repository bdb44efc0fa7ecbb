"""How far are our eager losses from a fused kernel? Ours vs the fastest peer vs ``torch.compile`` of
the textbook formula (Inductor fuses softmax, one-hot products and sums into C++ loops on CPU).

    python benchmarks/fused_bound.py [--reps 15] [--cases 2d_c8,3d_c4] [--losses ce,dice]

Same method as ``benchmarks/loss_speed.py`` (CPU time of one thread, forward+backward, interleaved
rounds, paired median of per-round ratios with its 95 % interval), all ratios against the fastest
eager peer. If the compiled textbook formula is not clearly faster than ours, the remaining gap to
a ratio goal is the peers' own speed, not work our node could still avoid. Compiling needs a C++
compiler (the first call compiles for a few seconds; that time is reported, not timed).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling loss_speed.py (benchmarks/ is no package)

import loss_speed as speed  # noqa: E402
from losses import build_loss  # noqa: E402


def textbook(name: str, c: int):
    """The plain formula a user would write, for the compiler to fuse."""
    if name == "ce":
        return lambda x, t: F.cross_entropy(x, t)

    def dice(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        p = F.softmax(x, 1)
        one_hot = F.one_hot(t, c).movedim(-1, 1).to(p.dtype)
        dims = tuple(range(2, x.dim()))
        tp, total = (p * one_hot).sum(dims), p.sum(dims) + one_hot.sum(dims)
        return (1.0 - (2.0 * tp + 1e-5) / (total + 1e-5)).mean()
    return dice


def main(argv: list[str] | None = None) -> str:
    args = speed.ratio_parser(__doc__, "2d_c8,3d_c4", "ce,dice").parse_args(argv)
    torch.set_num_threads(args.threads)
    lines: list[str] = []
    speed.report(lines, f"torch {torch.__version__}, {args.threads} thread(s), {args.reps} interleaved rounds; t ratio: "
                        f"median over rounds of impl / fastest eager peer in that round [95 % interval]",
                 f"{'case':7} {'loss':5} {'impl':16} {'fastest ms':>10} {'t ratio [95% CI]':>18} {'compile s':>9}")
    for case in args.cases.split(","):
        _, c, spatial = speed.CASES[case]
        logits, target = speed.multiclass_inputs(case)
        for name in args.losses.split(","):
            compiled = torch.compile(textbook(name, c))
            start = time.perf_counter()
            speed.step_time(compiled, logits, target)  # compiles forward and backward
            compile_s = time.perf_counter() - start
            peers = speed.peers(name, c, len(spatial))
            impls = {"ours": build_loss(name, mode="multiclass"), **peers, "compiled textbook": compiled}
            times = {k: v[0] for k, v in speed.measure(impls, logits, target, args.reps).items()}
            fastest = min(peers, key=lambda k: min(times[k]))
            for impl, rounds in times.items():
                ratio, low, high = speed.paired_ratio(rounds, times[fastest])
                row = (f"{case:7} {name:5} {impl:16} {min(rounds) * 1e3:10.1f} {ratio:6.2f} [{low:4.2f}, {high:4.2f}] "
                       f"{f'{compile_s:9.1f}' if impl == 'compiled textbook' else '':>9}")
                speed.report(lines, row)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""``model.compile`` and channels_last on CPU: the default model + loss in a plain training loop, eager vs
``torch.compile`` vs channels_last, interleaved in one process. Prints the one-off compile time (first
steps) and steady-state samples/s side by side with the ratio to eager. Absolute numbers on shared
machines are noise; the ratio is what matters (benchmarks/gpu.py measures the same on a GPU).
Inductor caches compiled kernels on disk (``TORCHINDUCTOR_CACHE_DIR``): point it at an empty folder
to measure the compile a first run pays, then run again with the same folder for what a later run of
a sweep pays (benchmarks/results/compile_cpu.txt has both).

    python benchmarks/compile_speed.py [--steps 20] [--repeats 2]
    OMP_NUM_THREADS=1 python benchmarks/compile_speed.py --variants eager,channels_last --steps 40 --repeats 5 \
        model.net.encoder_depth=3 "model.net.decoder_channels=[32,16,8]" datamodule.batch_size=4
        # the loss_benchmark_cpu model: benchmarks/results/channels_last_cpu.txt
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from runtime.builders import instantiate_model  # noqa: E402
from runtime.compile import maybe_compile, use_channels_last  # noqa: E402
from runtime.compose import compose_config  # noqa: E402

VARIANTS = ("eager", "compile", "channels_last")


def setup(out: Path, overrides: list[str]):
    cfg = compose_config(overrides, out)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.datamodule)
    datamodule.setup("fit")
    batches = [batch for _, batch in zip(range(4), datamodule.train_dataloader())]
    return cfg, batches


def run(cfg, batches, variant: str, steps: int, warmup: int) -> tuple[float, float]:
    """``(seconds of the first ``warmup`` steps, steady samples/s)`` of one variant, fresh model."""
    module = instantiate_model(cfg, speed_switches=False, loss=hydra.utils.instantiate(cfg.loss))
    net = use_channels_last(module.net, variant == "channels_last")
    net = maybe_compile(net, variant == "compile")
    optimizer = module.optimizer_factory(params=module.net.parameters())
    net.train()

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        module.loss(net(batch["image"]), batch["mask"]).backward()
        optimizer.step()

    start = time.perf_counter()
    for k in range(warmup):
        step(batches[k % len(batches)])
    first = time.perf_counter() - start
    start = time.perf_counter()
    for k in range(steps):
        step(batches[k % len(batches)])
    return first, steps * batches[0]["image"].shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. model.net.encoder_depth=3")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or "eager" not in variants:
        parser.error(f"--variants must include eager and come from {VARIANTS}, got {variants}")
    first: dict[str, list[float]] = {v: [] for v in variants}
    rate: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        cfg, batches = setup(Path(tmp), args.overrides)
        for _ in range(args.repeats):
            for variant in variants:
                torch._dynamo.reset()
                f, r = run(cfg, batches, variant, args.steps, args.warmup)
                first[variant].append(f)
                rate[variant].append(r)
    eager = statistics.median(rate["eager"])
    print(f"model {' '.join(args.overrides) or '(configs/model/unet.yaml)'} + loss=ce, batch {batches[0]['image'].shape[0]} x "
          f"{tuple(batches[0]['image'].shape[1:])}, {args.steps} steady steps after {args.warmup} warm-up steps, "
          f"median of {args.repeats}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"inductor cache {os.environ.get('TORCHINDUCTOR_CACHE_DIR', '(default)')}; first steps s: the first "
          f"repeat's warm-up (a later repeat reuses kernels compiled in this process)")
    print(f"{'variant':<16}{'first steps s':>14}{'samples/s':>12}{'ratio':>8}")
    for variant in variants:
        r = statistics.median(rate[variant])
        print(f"{variant:<16}{first[variant][0]:>14.2f}{r:>12.2f}{r / eager:>8.3f}")


if __name__ == "__main__":
    main()

"""One GPU benchmark (≤ 8 min on one GPU), written to benchmarks/results/gpu.txt:

1. bf16 smoke: every model config (configs/model/*.yaml) fits one batch and validates one batch with
   ``precision=bf16-mixed`` (detection models on the detection task);
2. training images/s through the real stack (train.py's datamodule, model, loss; Lightning trainer,
   bf16-mixed): default U-Net at 64² and 256², SegFormer, RetinaNet — second epoch timed, so start-up
   and cuDNN autotuning are excluded;
3. loss forward + backward at (8, 21, 512²) fp32 logits: ours vs torch / MONAI / smp, and the fraction
   of the memory-bandwidth bound reached (bound = logits read + gradient written + target read, at the
   copy bandwidth measured on this device);
4. wall time of a mini loss_benchmark sweep (``hydra/launcher=gpu_pool``) with jobs_per_gpu 1 vs 4.

    python benchmarks/gpu.py                 # on a GPU machine
    python benchmarks/gpu.py --dry-run       # CPU, tiny sizes: checks the script end to end (test suite)

The ``--dry-run`` numbers mean nothing; they only prove every section runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import hydra
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from losses import build_loss  # noqa: E402
from runtime.builders import instantiate_model  # noqa: E402
from runtime.compose import compose_config  # noqa: E402

RESULT = REPO / "benchmarks" / "results" / "gpu.txt"
DETECTION_MODELS = ("retinanet", "fcos")
VOLUME_MODELS = ("unet3d",)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class _EpochTimer(pl.Callback):
    def on_train_epoch_start(self, trainer, module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        if module.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start


def _trainer(device: str, **options) -> pl.Trainer:
    return pl.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, precision="bf16-mixed",
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, **options)


def _parts(overrides: list[str], out: Path):
    cfg = compose_config(overrides, out)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.datamodule)
    model = instantiate_model(cfg, loss=hydra.utils.instantiate(cfg.loss))
    return cfg, datamodule, model


def smoke(device: str, dry: bool, out: Path) -> list[str]:
    """Fit + validate one batch of every model config in bf16-mixed."""
    lines = ["## bf16 smoke (one training and one validation batch, precision=bf16-mixed)"]
    sizes = (["datamodule.image_size=64", "datamodule.batch_size=2", "datamodule.train_size=4",
              "datamodule.val_size=2", "datamodule.test_size=2"] if dry else [])
    volume_sizes = (["datamodule.volume_size=[16,16,16]", "datamodule.patch_size=[16,16,16]",
                     "datamodule.patches_per_epoch=2", "datamodule.train_size=2", "datamodule.val_size=1",
                     "datamodule.test_size=1"] if dry else [])
    for name in sorted(p.stem for p in (REPO / "configs" / "model").glob("*.yaml")):
        # each model on data of its kind: detection heads on boxes, 3-D nets on volumes
        task = (["task=detection", *sizes] if name in DETECTION_MODELS else
                ["datamodule=synthetic_3d", *volume_sizes] if name in VOLUME_MODELS else sizes)
        start = time.perf_counter()
        try:
            _, datamodule, model = _parts([*task, f"model={name}"], out / f"smoke_{name}")
            _trainer(device, fast_dev_run=1).fit(model, datamodule=datamodule)
            status = "ok"
        except Exception as error:  # one broken model must not hide the others' results
            status = f"FAILED {type(error).__name__}: {str(error).splitlines()[0][:160]}"
        lines.append(f"{name:<16}{status:<8} {time.perf_counter() - start:6.1f} s")
    return lines


def throughput(device: str, dry: bool, out: Path) -> list[str]:
    """Training images/s of the default U-Net at 64² and 256², SegFormer and RetinaNet (second epoch)."""
    steps = 3 if dry else 50
    cases = {
        "unet 64²": ["datamodule.image_size=64", "datamodule.batch_size=16"],
        "unet 256²": ["datamodule.image_size=256", "datamodule.batch_size=16"],
        "segformer 256²": ["model=segformer", "datamodule.image_size=256", "datamodule.batch_size=16"],
        "retinanet 128²": ["task=detection", "datamodule.batch_size=8"],
    }
    lines = [f"## training images/s (bf16-mixed, second epoch of {steps} steps, default model options)",
             f"{'case':<18}{'batch':>6}{'images/s':>10}"]
    for case, overrides in cases.items():
        if dry:
            overrides = [o for o in overrides if "image_size" not in o and "batch_size" not in o] + [
                "datamodule.batch_size=2"] + ([] if "task=detection" in overrides else ["datamodule.image_size=32"])
        cfg, datamodule, model = _parts([*overrides, "datamodule.num_workers=0"], out / f"speed_{case.split()[0]}")
        timer = _EpochTimer()
        _trainer(device, max_epochs=2, limit_train_batches=steps, limit_val_batches=0,
                 callbacks=[timer]).fit(model, datamodule=datamodule)
        batch = cfg.datamodule.batch_size
        lines.append(f"{case:<18}{batch:>6}{steps * batch / timer.seconds:>10.1f}")
    return lines


def _peers() -> dict[str, dict[str, LossFn]]:
    import monai.losses as M
    import segmentation_models_pytorch.losses as S

    def monai(loss):
        return lambda x, t: loss(x, t.unsqueeze(1))

    mc = dict(softmax=True, to_onehot_y=True)
    return {
        "ce": {"torch": lambda x, t: F.cross_entropy(x, t), "smp": S.SoftCrossEntropyLoss(smooth_factor=0.0)},
        "dice": {"monai": monai(M.DiceLoss(**mc)), "smp": S.DiceLoss("multiclass")},
        "focal": {"monai": monai(M.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0))},
        "dice_ce": {"monai": monai(M.DiceCELoss(**mc))},
    }


def _time(fn: Callable[[], None], device: str, repeats: int) -> float:
    fn()  # warm-up (kernel selection, caches)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def copy_bandwidth(device: str, dry: bool) -> float:
    """Bytes/s of a device-to-device copy (read + write counted), the achievable memory bandwidth."""
    numel = (1 << 20) if dry else (1 << 28)
    src, dst = torch.empty(numel, device=device), torch.empty(numel, device=device)
    seconds = _time(lambda: dst.copy_(src), device, 3 if dry else 20)
    return 2 * src.numel() * src.element_size() / seconds


def loss_speed(device: str, dry: bool) -> list[str]:
    n, c, side = (2, 5, 32) if dry else (8, 21, 512)
    generator = torch.Generator(device="cpu").manual_seed(0)
    logits = torch.randn(n, c, side, side, generator=generator).to(device)
    target = torch.randint(0, c, (n, side, side), generator=generator).to(device)
    bandwidth = copy_bandwidth(device, dry)
    bound = (2 * logits.numel() * logits.element_size() + target.numel() * target.element_size()) / bandwidth
    lines = [f"## loss forward+backward, fp32 logits ({n}, {c}, {side}, {side}); copy bandwidth "
             f"{bandwidth / 1e9:.0f} GB/s; bandwidth bound {bound * 1e3:.2f} ms",
             f"{'loss':<10}{'impl':<8}{'ms':>9}{'x fastest peer':>16}{'of bound':>10}"]
    for name, peers in _peers().items():
        impls = {"ours": build_loss(name, mode="multiclass"), **peers}
        times = {}
        for impl, fn in impls.items():
            def step(fn=fn):
                x = logits.detach().requires_grad_()
                fn(x, target).backward()
            times[impl] = _time(step, device, 2 if dry else 10)
        fastest = min(t for impl, t in times.items() if impl != "ours")
        for impl, t in times.items():
            lines.append(f"{name:<10}{impl:<8}{t * 1e3:>9.2f}{t / fastest:>16.2f}{bound / t:>10.0%}")
    return lines


def sweep_wall_time(dry: bool, out: Path) -> list[str]:
    """Wall time of the same mini loss_benchmark with jobs_per_gpu = 1 and 4 (2 in a dry run)."""
    if dry:
        common = ["debug=fast", "trainer.max_epochs=1", "datamodule.train_size=8", "datamodule.val_size=4",
                  "datamodule.test_size=4", "model.net.encoder_depth=3", "model.net.decoder_channels=[16,16,8]",
                  "loss=ce,dice", "seed=1", "hydra.callbacks.gpu_pool.gpus=[0]", "hydra.callbacks.gpu_pool.cpus=2"]
        counts = (1, 2)
    else:
        common = ["experiment=loss_benchmark", "trainer=gpu", "trainer.max_epochs=2", "datamodule.train_size=256",
                  "hydra.sweeper.params.datamodule=synthetic_imbalanced", "hydra.sweeper.params.seed=1,2",
                  "hydra.sweeper.params.loss=ce,dice,focal,dice_ce"]
        counts = (1, 4)
    lines = ["## mini loss_benchmark sweep (hydra/launcher=gpu_pool, " + " ".join(common) + ")",
             f"{'jobs_per_gpu':<14}{'jobs':>6}{'wall s':>9}{'completed':>11}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "MPLBACKEND": "Agg"}
    for jobs_per_gpu in counts:
        sweep_dir = out / f"sweep_{jobs_per_gpu}"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "train.py", "-m", *common, "hydra/launcher=gpu_pool",
                               f"hydra.callbacks.gpu_pool.jobs_per_gpu={jobs_per_gpu}",
                               "hydra.callbacks.compare.enabled=false", "callbacks.progress_bar=null",
                               f"hydra.sweep.dir={sweep_dir}"], cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"sweep with jobs_per_gpu={jobs_per_gpu} failed:\n{done.stderr[-3000:]}")
        records = list(sweep_dir.glob("[0-9]*/metrics.json"))
        completed = sum('"status": "completed"' in p.read_text() for p in records)
        lines.append(f"{jobs_per_gpu:<14}{len(records):>6}{wall:>9.1f}{completed:>11}")
    return lines


SECTIONS = ("smoke", "throughput", "loss", "sweep")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: check that every section runs")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out", type=Path, default=None, help=f"result file (default {RESULT}; dry runs: none)")
    args = parser.parse_args(argv)
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device visible; use --dry-run on CPU")
    name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
    lines = [f"# benchmarks/gpu.py{' --dry-run (numbers meaningless)' if args.dry_run else ''}: {name}, "
             f"torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}"]
    print(lines[0], flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        runs = {"smoke": lambda: smoke(device, args.dry_run, out),
                "throughput": lambda: throughput(device, args.dry_run, out),
                "loss": lambda: loss_speed(device, args.dry_run),
                "sweep": lambda: sweep_wall_time(args.dry_run, out)}
        for section in SECTIONS:
            if section in args.sections:
                found = runs[section]()
                print("", *found, sep="\n", flush=True)  # a section at a time: a killed run still shows its numbers
                lines += ["", *found]
    lines += ["", f"total {time.perf_counter() - started:.0f} s"]
    print(lines[-1])
    text = "\n".join(lines) + "\n"
    target = args.out if args.out is not None else (None if args.dry_run else RESULT)
    if target is not None:
        target.write_text(text)
    return text


if __name__ == "__main__":
    main()

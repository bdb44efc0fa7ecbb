"""What resuming from last.ckpt costs: an interrupted-and-resumed default run vs an uninterrupted one.

    python benchmarks/resume_overhead.py [--kill-after-epochs 5] [overrides ...]

Runs ``python train.py <overrides>`` three times in fresh run dirs:
1. uninterrupted;
2. the same, killed with SIGKILL as soon as the ``last.ckpt`` of epoch ``k`` is on disk (the file is
   watched every 10 ms, so the killed attempt loses only the first batches of epoch k+1);
3. started again with ``resume=true`` in the dir of 2: it resumes from that checkpoint.

Prints the wall times (whole processes, start-up included), the ratio (2 + 3) / 1 — the time a resume
adds, mostly the second process start-up — and whether the resumed run's test metrics equal the
uninterrupted run's. Also times one checkpoint write of the run's size with Lightning's
``TorchCheckpointIO`` and with lossbench's atomic writer (temp file + fsync + rename), 5 each,
interleaved. Wall times depend on the machine's load: the output states the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO  # noqa: E402

from runtime.checkpointing import AtomicCheckpointIO  # noqa: E402


def run(run_dir: Path, overrides: list[str], kill_after: int | None = None) -> float:
    """Wall seconds of one ``python train.py`` process; with ``kill_after``, SIGKILLs it once the
    ``last.ckpt`` of epoch ``kill_after - 1`` (0-based) is in place."""
    command = [sys.executable, "train.py", *overrides, f"hydra.run.dir={run_dir}", "callbacks.progress_bar=null"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        last = run_dir / "checkpoints" / "last.ckpt"
        seen, inode = 0, None
        while process.poll() is None:
            try:
                current = last.stat().st_ino  # each save renames a new file into place
            except FileNotFoundError:
                current = None
            if current is not None and current != inode:
                inode, seen = current, seen + 1
                if seen == kill_after:
                    process.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.01)
    _, err = process.communicate()
    elapsed = time.perf_counter() - started
    if kill_after is None and process.returncode != 0:
        raise SystemExit(f"train.py failed in {run_dir}:\n{err[-3000:]}")
    return elapsed


def write_times(checkpoint_path: Path, repeats: int = 5) -> tuple[float, float]:
    """Median seconds of one checkpoint write with Lightning's IO and with the atomic writer."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    checkpoint.pop("lossbench", None)
    plain, atomic = TorchCheckpointIO(), AtomicCheckpointIO(lambda: {})
    times: dict[str, list[float]] = {"plain": [], "atomic": []}
    with tempfile.TemporaryDirectory(dir=checkpoint_path.parent) as scratch:
        for _ in range(repeats):
            for name, io in (("plain", plain), ("atomic", atomic)):
                started = time.perf_counter()
                io.save_checkpoint(checkpoint, Path(scratch) / f"{name}.ckpt")
                times[name].append(time.perf_counter() - started)
    return tuple(sorted(times[k])[repeats // 2] for k in ("plain", "atomic"))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill-after-epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="scratch dir for the run dirs (default: a temp dir)")
    parser.add_argument("overrides", nargs="*", help="train.py overrides (default: none, the default config)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="resume_overhead_"))
    load_before = os.getloadavg()
    clean = run(out / "clean", args.overrides)
    first = run(out / "resumed", args.overrides, kill_after=args.kill_after_epochs)
    second = run(out / "resumed", [*args.overrides, "resume=true"])
    load_after = os.getloadavg()
    a = json.loads((out / "clean" / "metrics.json").read_text())
    b = json.loads((out / "resumed" / "metrics.json").read_text())
    diff = max(abs(a["metrics"][k] - b["metrics"][k]) for k in a["metrics"]
               if a["metrics"][k] is not None and b["metrics"].get(k) is not None)
    plain, atomic = write_times(out / "clean" / "checkpoints" / "last.ckpt")
    size_mb = (out / "clean" / "checkpoints" / "last.ckpt").stat().st_size / 1e6
    print(f"config: python train.py {' '.join(args.overrides) or '(defaults)'}; {a['epochs']} epochs; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; {os.cpu_count()} cores")
    print(f"load average (1 min) before / after: {load_before[0]:.1f} / {load_after[0]:.1f}")
    print(f"uninterrupted run                 {clean:8.1f} s")
    print(f"killed after epoch {args.kill_after_epochs - 1} (0-based)       {first:8.1f} s")
    print(f"resumed (resume=true)             {second:8.1f} s   resumes: {b.get('resumes')}")
    print(f"interrupted + resumed / uninterrupted = {(first + second) / clean:.3f}")
    print(f"resumed run's metrics vs uninterrupted: max |difference| = {diff:.2e} over {len(a['metrics'])} metrics")
    print(f"one checkpoint write ({size_mb:.0f} MB), median of 5: Lightning {plain * 1000:.0f} ms, "
          f"atomic + fsync {atomic * 1000:.0f} ms (×{atomic / plain:.2f}); 2 writes per epoch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

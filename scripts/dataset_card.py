"""Dataset card numbers: ``python scripts/dataset_card.py datamodule=<name> [datamodule.root=...] --out DIR``.

Composes the real config tree (the same overrides as ``train.py``, so ``task=detection`` works too),
instantiates the datamodule and writes into ``--out``:

- ``card.json`` — the numbers a dataset card quotes: the split used (name, hash, counts), image sizes
  per split; segmentation: class pixel share of the training split, connected components (objects)
  per foreground class with their area distribution (what ``scripts/dataset_stats.py`` measures);
  detection: boxes per class, boxes per image, box-size quantiles (√(w·h) px) and the share under 32²;
- ``card.md`` — the same as tables, ready to paste into ``docs/datasets/<name>.md``;
- ``preview.png`` — a few validation images with their masks or boxes drawn over them.

Works on any datamodule of the project, your own folder included.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # run as a file: the repository root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402

from common.names import SPLITS  # noqa: E402
from common.palette import class_colors, to_display  # noqa: E402
from datamodules.coco import CocoBoxes  # noqa: E402
from datamodules.contract import SplitSource  # noqa: E402
from datamodules.stats import dataset_stats, format_report  # noqa: E402
from runtime.compose import compose_config  # noqa: E402

PREVIEW_IMAGES = 4


def detection_stats(datamodule: Any) -> dict[str, Any]:
    """Per split image counts and sizes (stored images), boxes per class, per image and their sizes. COCO-style
    datasets are counted from their annotations, so a training split's random crops do not hide boxes."""
    datamodule.setup("fit")
    datamodule.setup("test")
    names = list(datamodule.class_names)
    out: dict[str, Any] = {"num_classes": int(datamodule.num_classes), "class_names": names, "splits": {}}
    for split in SPLITS:
        dataset = datamodule.datasets[split]
        sizes, per_image, labels, scales = [], [], [], []
        for index in range(len(dataset)):
            if isinstance(dataset, CocoBoxes):  # the stored boxes, not those of a random training crop
                target, _ = dataset.target(index)
                info = dataset.coco.imgs[dataset.ids[index]]
                sizes.append((int(info["height"]), int(info["width"])))
            else:
                image, target = dataset[index]
                sizes.append(tuple(image.shape[-2:]))
            boxes = target["boxes"].to(torch.float64).reshape(-1, 4)
            per_image.append(len(boxes))
            labels.extend(target["labels"].tolist())
            wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
            scales.extend(torch.sqrt(wh.prod(dim=1)).tolist())
        scales_np = np.asarray(scales)
        info = {"images": len(dataset), "height": _spread([h for h, _ in sizes]), "width": _spread([w for _, w in sizes]),
                "boxes": int(sum(per_image)), "images_without_boxes": int(sum(1 for n in per_image if n == 0)),
                "boxes_per_image_median": float(np.median(per_image)) if per_image else None,
                "boxes_per_class": {names[k - 1]: int(labels.count(k)) for k in range(1, len(names) + 1)}}
        if scales_np.size:
            q = np.quantile(scales_np, [0.05, 0.25, 0.5, 0.75, 0.95])
            info["box_scale_px"] = dict(zip(("p05", "p25", "median", "p75", "p95"), [round(float(v), 1) for v in q]))
            info["share_under_32px"] = round(float(np.mean(scales_np < 32)), 4)
        out["splits"][split] = info
    return out


def format_detection(stats: dict[str, Any], title: str) -> str:
    lines = [f"# Dataset card numbers: {title}", "", "| split | images | height min/median/max | width min/median/max | "
             "boxes | images without boxes | boxes per image (median) | box scale √(wh) p05/p50/p95 px | < 32 px |",
             "|---|---|---|---|---|---|---|---|---|"]
    for split, info in stats["splits"].items():
        h, w, scale = info["height"], info["width"], info.get("box_scale_px", {})
        lines.append(f"| {split} | {info['images']} | {h['min']}/{h['median']}/{h['max']} | {w['min']}/{w['median']}/{w['max']} | "
                     f"{info['boxes']} | {info['images_without_boxes']} | {info['boxes_per_image_median']} | "
                     f"{scale.get('p05', '–')}/{scale.get('median', '–')}/{scale.get('p95', '–')} | "
                     f"{info.get('share_under_32px', '–')} |")
    lines += ["", "| class | " + " | ".join(stats["splits"]) + " |", "|---|" + "---|" * len(stats["splits"])]
    for name in stats["class_names"]:
        lines.append(f"| {name} | " + " | ".join(str(info["boxes_per_class"][name]) for info in stats["splits"].values()) + " |")
    return "\n".join(lines) + "\n"


def preview(datamodule: Any, path: Path, task: str) -> None:
    """``PREVIEW_IMAGES`` validation images with masks (segmentation) or boxes (detection) drawn on them."""
    datamodule.setup("fit")
    loader = datamodule.val_dataloader()
    images, overlays = [], []
    for batch in loader:
        if task == "detection":
            for image, target in zip(*batch):
                images.append(to_display(image.detach().float().numpy()))
                overlays.append(target)
        else:
            for image, mask in zip(batch["image"], batch["mask"]):
                if image.dim() == 4:  # a volume: its middle slice
                    middle = image.shape[1] // 2
                    image, mask = image[:, middle], mask[middle]
                images.append(to_display(image.detach().float().numpy()))
                overlays.append(mask.numpy())
        if len(images) >= PREVIEW_IMAGES:
            break
    count = min(len(images), PREVIEW_IMAGES)
    figure, axes = plt.subplots(1, max(count, 1), figsize=(4 * max(count, 1), 4), squeeze=False)
    colors = class_colors(int(datamodule.num_classes) + 1)
    for axis, image, overlay in zip(axes[0], images, overlays):
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None)
        if task == "detection":
            for box, label in zip(overlay["boxes"].tolist(), overlay["labels"].tolist()):
                x1, y1, x2, y2 = box
                axis.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1, color=colors[int(label)]))
        else:
            rgba = np.zeros((*overlay.shape, 4))
            for k in range(1, int(datamodule.num_classes)):
                rgba[overlay == k] = to_rgba(colors[k], 0.45)
            axis.imshow(rgba)
        axis.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _spread(values: list[int]) -> dict[str, float | int | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": int(min(values)), "median": float(np.median(values)), "max": int(max(values))}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python scripts/dataset_card.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. datamodule=dsb2018 datamodule.root=/data/dsb")
    parser.add_argument("--out", type=Path, required=True, help="output folder for card.json, card.md, preview.png")
    parser.add_argument("--no-preview", action="store_true", help="skip preview.png")
    args = parser.parse_args(argv)
    try:
        cfg = compose_config(list(args.overrides), output_dir=args.out)
        choice = str(cfg.hydra.runtime.choices.get("datamodule", "datamodule"))
        task = str(cfg.task)
        datamodule = hydra.utils.instantiate(cfg.datamodule, _convert_="all")
    finally:
        GlobalHydra.instance().clear()
    if task == "detection":
        stats = detection_stats(datamodule)
        report = format_detection(stats, choice)
    else:
        stats = dataset_stats(datamodule)
        report = format_report(stats, choice).replace("# Dataset statistics", "# Dataset card numbers", 1)
    if isinstance(datamodule, SplitSource) and (split := datamodule.split_record()) is not None:
        stats["split"] = split
        report += (f"\nSplit `{split['name']}` (hash `{split['hash'][:12]}…`): train {split['counts']['train']}, "
                   f"val {split['counts']['val']}, test {split['counts']['test']}; {split['missing']} listed case(s) "
                   f"missing, {split['unlisted']} assigned by the hash rule.\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "card.json").write_text(json.dumps(stats, indent=2))
    (args.out / "card.md").write_text(report)
    if not args.no_preview:
        preview(datamodule, args.out / "preview.png", task)
    print(report)
    print(f"saved {args.out}/card.json, card.md" + ("" if args.no_preview else ", preview.png"))
    return stats


if __name__ == "__main__":
    main()

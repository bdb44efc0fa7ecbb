"""Write a COCO-format folder of synthetic cell-like blobs (datamodules/blob_coco.py; nothing is downloaded).

    python scripts/make_blob_coco.py data/cells                     # 60 images of 256-1024 px, ≈ 2,900 boxes
    python scripts/make_blob_coco.py data/cells_small --images 6 --sides 96 192
    python train.py task=detection datamodule=coco datamodule.root=data/cells datamodule.num_classes=1
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from datamodules.blob_coco import BlobSpec, write_blob_coco


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--images", type=int, default=BlobSpec.images)
    parser.add_argument("--sides", type=int, nargs=2, default=BlobSpec.image_sides, metavar=("MIN", "MAX"))
    parser.add_argument("--classes", type=int, default=BlobSpec.num_classes)
    parser.add_argument("--seed", type=int, default=BlobSpec.seed)
    args = parser.parse_args()
    spec = dataclasses.replace(BlobSpec(), images=args.images, image_sides=tuple(args.sides),
                               num_classes=args.classes, seed=args.seed)
    coco = write_blob_coco(args.out, spec)
    wh = np.array([a["bbox"][2:] for a in coco["annotations"]]).reshape(-1, 2)
    area = wh.prod(axis=1)
    print(f"{args.out}: {len(coco['images'])} images, {len(wh)} boxes; median box "
          f"{np.median(wh[:, 0]):.0f} x {np.median(wh[:, 1]):.0f} px, {np.mean(area < 32 ** 2):.0%} under 32² px²")


if __name__ == "__main__":
    main()

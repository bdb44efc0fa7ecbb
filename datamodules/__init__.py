"""LightningDataModules: synthetic (embedded default), user folders, COCO, torchvision sets."""

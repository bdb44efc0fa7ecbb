"""LightningModules: segmentation (smp) and detection (torchvision)."""

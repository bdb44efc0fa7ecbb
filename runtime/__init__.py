"""Run plumbing shared by train.py and compare.py: the metrics.json record and config-to-object helpers."""

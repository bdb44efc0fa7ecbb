"""Reporting: collect finished runs, compute the leaderboard statistics, write plots and report.html.

Entry point: ``reporting.pipeline.compare`` (what ``compare.py`` calls). Submodules import lazily so
that training code using ``common.palette`` does not load pandas/matplotlib/scipy.
"""

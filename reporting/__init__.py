"""Reporting: collect finished runs, compute the leaderboard statistics, write plots and report.html."""
from reporting.pipeline import Comparison, compare

__all__ = ["Comparison", "compare"]

"""Power / sample-size planner: from a pilot sweep, how many seeds and test cases detect a difference Δ.

For each row of a table the paired differences to the baseline, ``D[s, c]`` (seed × case), are split by
a two-way ANOVA into a seed component σ_s², a case component σ_c² and noise σ_e² (negative estimates
are set to 0); the table's components are the medians over its rows. A design of ``S`` seeds and ``C``
cases estimates Δ with ``SE² = σ_s²/S + σ_c²/C + σ_e²/(SC)``. With the Holm family of ``m`` rows the
strictest step tests at ``α/m`` (a Bonferroni bound, so the plan is conservative). The power is that of
compare.py's two-level t test, which has ``S − 1`` degrees of freedom: the noncentral t distribution
with noncentrality ``|Δ|/SE``. Power grows with C and S, so the smallest sufficient C (bisection up to
``MAX_CASES``) and S (up to ``MAX_SEEDS``) are searched:

- cases needed with 3, 5 and 10 seeds; none when even infinitely many cases leave ``SE² = σ_s²/S`` too
  large (seed noise alone: more seeds are needed whatever the test set);
- seeds needed with the pilot's C cases, and the power the pilot itself has.

The per-case Wilcoxon test (a different question: it holds the trained models fixed) is not planned.

Per-run tables (no case files) have only the seed component: the seeds needed are found with the
noncentral t distribution of the paired t-test.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as sps

PLAN_SEEDS = (3, 5, 10)
MAX_SEEDS = 1_000
MAX_CASES = 1_000_000


def variance_components(d: np.ndarray) -> tuple[float, float, float]:
    """``(σ_s², σ_c², σ_e²)`` of a complete ``(S, C)`` matrix by the two-way ANOVA (no interaction)."""
    d = np.asarray(d, dtype=np.float64)
    s, c = d.shape
    grand = d.mean()
    a, b = d.mean(axis=1), d.mean(axis=0)
    ms_seed = c * ((a - grand) ** 2).sum() / (s - 1) if s > 1 else 0.0
    ms_case = s * ((b - grand) ** 2).sum() / (c - 1) if c > 1 else 0.0
    resid = d - a[:, None] - b[None, :] + grand
    if s > 1 and c > 1:
        ms_err = (resid ** 2).sum() / ((s - 1) * (c - 1))
    else:  # one seed: noise and case effect cannot be told apart; count it all as case (or seed) effect
        ms_err = 0.0
    sigma_s = max(0.0, (ms_seed - ms_err) / c) if s > 1 else 0.0
    sigma_c = max(0.0, (ms_case - ms_err) / s) if c > 1 else 0.0
    return float(sigma_s), float(sigma_c), float(ms_err)


def power(delta: float, comps: tuple[float, float, float], seeds: int, cases: int, alpha: float) -> float:
    """Two-sided power of the two-level t test of Δ (``seeds − 1`` df; one seed: ``cases − 1``) at ``alpha``."""
    s2, c2, e2 = comps
    se = math.sqrt(s2 / seeds + c2 / cases + e2 / (seeds * cases))
    if se == 0:
        return 1.0 if delta else alpha
    return _nct_power(abs(delta) / se, seeds - 1 if seeds > 1 else cases - 1, alpha)


def _nct_power(nc: float, df: int, alpha: float) -> float:
    crit = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc))


def plan_cases(diffs: Sequence[np.ndarray], delta: float, target: float, alpha: float, n_tests: int) -> dict:
    """Plan for a table with per-case data: ``diffs`` are the rows' complete ``(S, C)`` difference matrices."""
    comps = tuple(float(np.median(v)) for v in zip(*(variance_components(d) for d in diffs)))
    s, c = diffs[0].shape
    a = alpha / max(1, n_tests)

    def cases_for(seeds: int) -> int | None:
        if power(delta, comps, seeds, MAX_CASES, a) < target:
            return None
        lo, hi = 2, MAX_CASES  # power(hi) reaches the target; find the smallest such C
        while lo < hi:
            mid = (lo + hi) // 2
            if power(delta, comps, seeds, mid, a) >= target:
                hi = mid
            else:
                lo = mid + 1
        return lo

    seeds_needed = next((n for n in range(2, MAX_SEEDS + 1) if power(delta, comps, n, c, a) >= target), None)
    s2, c2, e2 = comps
    return {"unit": "case", "n_tests": n_tests, "alpha_per_test": round(a, 12),
            "sigma_seed": math.sqrt(s2), "sigma_case": math.sqrt(c2), "sigma_noise": math.sqrt(e2),
            "pilot_seeds": s, "pilot_cases": c, "power_at_pilot": power(delta, comps, s, c, a),
            "seeds_needed_at_pilot_cases": seeds_needed,
            "cases_needed": {str(k): cases_for(k) for k in PLAN_SEEDS}}


def plan_seeds(diffs: Sequence[np.ndarray], delta: float, target: float, alpha: float, n_tests: int) -> dict:
    """Plan for a per-run table: ``diffs`` are the rows' paired per-seed differences."""
    sds = [float(np.std(d, ddof=1)) for d in diffs if len(d) > 1]
    sd = float(np.median(sds)) if sds else math.nan
    a = alpha / max(1, n_tests)
    pilot = int(np.median([len(d) for d in diffs])) if diffs else 0
    needed = None
    if math.isfinite(sd):
        for n in range(2, MAX_SEEDS + 1):
            if _t_power(delta, sd, n, a) >= target:
                needed = n
                break
    return {"unit": "seed", "n_tests": n_tests, "alpha_per_test": round(a, 12), "sigma_seed": sd, "sigma_case": None,
            "sigma_noise": None, "pilot_seeds": pilot, "pilot_cases": None,
            "power_at_pilot": _t_power(delta, sd, pilot, a) if math.isfinite(sd) and pilot > 1 else None,
            "seeds_needed_at_pilot_cases": needed, "cases_needed": None}


def _t_power(delta: float, sd: float, n: int, alpha: float) -> float:
    if sd == 0:
        return 1.0 if delta else alpha
    return _nct_power(abs(delta) / (sd / math.sqrt(n)), n - 1, alpha)


def plan_sentence(title: str, plan: dict, delta: float, target: float) -> str:
    """One line for compare.py's output and leaderboard.md."""
    head = (f"{title}: Δ = {delta:g} at power {target:g}, α {plan['alpha_per_test']:.3g} per test "
            f"(Holm over {plan['n_tests']} rows)")
    pw = plan["power_at_pilot"]
    pw_text = "–" if pw is None else f"{pw:.2f}"
    need = plan["seeds_needed_at_pilot_cases"]
    if plan["unit"] == "seed":
        return (f"{head}; per-run data (σ seeds {plan['sigma_seed']:.3g}): power now {pw_text} with "
                f"{plan['pilot_seeds']} seeds; seeds needed: {need if need else f'> {MAX_SEEDS}'}")
    cases = ", ".join(f"{k} seeds → {v if v else '∞ (more seeds)'}" for k, v in plan["cases_needed"].items())
    return (f"{head}; σ seed {plan['sigma_seed']:.3g}, case {plan['sigma_case']:.3g}, noise {plan['sigma_noise']:.3g}: "
            f"power now {pw_text} ({plan['pilot_seeds']} seeds × {plan['pilot_cases']} cases); seeds needed with "
            f"{plan['pilot_cases']} cases: {need if need else '∞ (more cases)'}; cases needed: {cases}")


def plan_leaderboard(lb, delta: float, target: float = 0.8) -> list[dict]:
    """One plan per table of ``lb`` (a :class:`reporting.leaderboard.Leaderboard`) for its rank-by metric:
    the rows' paired differences to the table's baseline, per case when the table has them."""
    if not delta or not math.isfinite(delta):
        raise ValueError(f"--plan-delta must be a non-zero finite difference, got {delta!r}")
    if not 0 < target < 1:
        raise ValueError(f"--plan-power must be in (0, 1), got {target!r}")
    m = lb.rank_by
    plans = []
    for key, part in lb.parts():
        base = lb.baseline_label(part)
        if base is None:
            continue
        per_case = lb.cases.get(key).rows.get(m) if key in lb.cases else None
        diffs = []
        base_row = next(row for (_, row) in part.iterrows() if f"{row['loss']} {row['loss_params']}".strip() == base)
        base_runs = {r.seed: r for r in lb.runs_of(key, base_row) if r.completed}
        for _, row in part.iterrows():
            label = f"{row['loss']} {row['loss_params']}".strip()
            if label == base:
                continue
            if per_case is not None:
                rk = next(k for k in per_case if k.label == label)
                bk = next(k for k in per_case if k.label == base)
                (rs, x), (bs, bx) = per_case[rk], per_case[bk]
                shared = [s for s in rs if s in set(bs)]
                if shared:
                    d = x[[rs.index(s) for s in shared]] - bx[[bs.index(s) for s in shared]]
                    d = d[:, np.isfinite(d).all(axis=0)]
                    if d.shape[1] >= 2:
                        diffs.append(d)
            else:
                pairs = [(lb.values(r, m), lb.values(base_runs[r.seed], m)) for r in lb.runs_of(key, row)
                         if r.completed and r.seed in base_runs]
                d = np.array([a - b for a, b in pairs if math.isfinite(a - b)])
                if d.size:
                    diffs.append(d)
        if not diffs:
            continue
        if per_case is not None:
            shape = diffs[0].shape
            diffs = [d for d in diffs if d.shape == shape]
            plan = plan_cases(diffs, delta, target, lb.alpha, len(part) - 1)
        else:
            plan = plan_seeds(diffs, delta, target, lb.alpha, len(part) - 1)
        plans.append({"datamodule": key.datamodule, "model": key.model, "settings": key.settings, "metric": m,
                      "title": key.title, **plan})
    return plans

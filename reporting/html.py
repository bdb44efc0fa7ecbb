"""``report.html``: one self-contained page — inline CSS, base64 PNGs, one small inline script that makes
the tables sortable (click a header), no network access. Links to run dirs are relative to the page."""
from __future__ import annotations

import base64
import datetime as _dt
import html
import os
from pathlib import Path

import pandas as pd

from metrics.names import bucket_order, higher_is_better
from reporting.collect import Run
from reporting.grouping import shared_overrides
from reporting.leaderboard import Leaderboard, row_labels
from reporting.markdown import (Extras, budget_sentence, describe, fmt, fmt_p, metric_cell, pairwise_lines, plan_lines,
                                rank_cell, significant, stability_sentence, test_cell, warnings)
from reporting.metric_names import column
from reporting.plots import class_names
from reporting.stats import summarize

# Per-class metric families shown as tables with CIs, and the by-size families.
CLASS_FAMILIES = ("iou", "object_recall", "ap", "nsd", "hd95")
SIZE_FAMILIES = {"segmentation": ("small_recall/",), "detection": ("map_small", "map_medium", "map_large")}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem auto;max-width:1280px;
     color:#1d2330;background:#fff;padding:0 1rem}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde}
h3{font-size:1.05rem;margin-top:1.6rem}h4{font-size:.9rem;margin:.8rem 0 .2rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.82rem}
th,td{border:1px solid #cdd3de;padding:.22rem .45rem;text-align:right;white-space:nowrap}
th{background:#eef1f7}td.l,th.l{text-align:left}table.sortable th{cursor:pointer}
table.sortable th:after{content:" ⇅";color:#99a}
tr.best td{background:#e7f6e7;font-weight:600}tr.failed td{color:#a12}tr.base td{background:#f1f1f4}
td.sig{background:#fff4d6}
.meta{color:#556;font-size:.85rem}ul.notes{font-size:.85rem;color:#334}
.warn{color:#a12;font-weight:600}div.box{border:1px solid #e8b4b8;background:#fdf3f3;padding:.2rem 1rem;margin:1rem 0}
.scroll{overflow-x:auto}small{color:#556;font-weight:400}
img{max-width:100%;border:1px solid #e3e6ec;margin:.4rem 0}
code{background:#f3f4f7;padding:0 .2rem}nav a{margin-right:.8rem}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var asc=th.dataset.dir!=='asc';th.dataset.dir=asc?'asc':'desc';var b=t.tBodies[0];
    var key=function(r){var c=r.cells[i];var v=c.dataset.v!==undefined?c.dataset.v:c.textContent.trim();
      var n=parseFloat(v);return isNaN(n)?v:n;};
    Array.prototype.slice.call(b.rows).sort(function(x,y){var a=key(x),c=key(y);
      var na=typeof a==='number',nc=typeof c==='number';
      var d=(na&&nc)?a-c:(na?-1:(nc?1:String(a).localeCompare(String(c))));
      return asc?d:-d;}).forEach(function(r){b.appendChild(r);});});});});
"""


def write_report(path: Path, lb: Leaderboard, runs: list[Run], plots: list[Path], extras: Extras,
                 sources: list[Path]) -> Path:
    """Write the report to ``path`` and return it."""
    out_dir = path.parent
    warns = warnings(lb)
    body = [
        f"<h1>lossbench comparison — {_e(runs[0].task)}</h1>",
        f"<p class=meta>{len(runs)} runs ({sum(r.completed for r in runs)} completed, {len(extras.skipped)} run dirs "
        f"skipped) from {', '.join(f'<code>{_e(_shown(s))}</code>' for s in sources)} · generated "
        f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>",
        "<nav><a href='#leaderboard'>leaderboard</a><a href='#across'>across tables</a><a href='#plots'>plots</a>"
        "<a href='#config'>config diff</a><a href='#runs'>runs</a></nav>",
    ]
    if warns or extras.skipped:
        body.append("<div class=box><ul class=notes>" + "".join(f"<li class=warn>{_inline(w)}</li>" for w in warns)
                    + (f"<li class=warn>{len(extras.skipped)} run dir(s) skipped — see <a href='#skipped'>the list"
                       "</a></li>" if extras.skipped else "") + "</ul></div>")
    body += ["<h2 id=leaderboard>Leaderboard</h2>",
             "<ul class=notes>" + "".join(f"<li>{_inline(line)}</li>" for line in describe(lb)) + "</ul>"]
    taus = {(t["datamodule"], t["model"], t["settings"]): t for t in extras.taus}
    for key, part in lb.parts():
        body += [f"<h3>{_e(key.title)}</h3>", _leaderboard_table(lb, part),
                 f"<h4>Tests against <code>{_e(lb.baseline_label(part) or lb.baseline)}</code></h4>",
                 _tests_table(lb, part)]
        if tuple(key) in taus:
            body.append(f"<p class=meta>{_inline(budget_sentence(taus[tuple(key)], lb))}</p>")
        if key in lb.stability:
            body.append(f"<p class=meta>{_inline(stability_sentence(lb, key))}</p>")
        body += _family_tables(lb, key, part)
    body.append("<h2 id=across>Across tables</h2>")
    if extras.across is not None:
        body += [f"<p>{_inline(extras.across.verdict)}</p>", _ranks_table(extras.across)]
        body += _markdown_block(pairwise_lines(extras.across, lb.alpha))
    if extras.plans is not None:
        body += ["<h2 id=planning>Planning</h2>", *_markdown_block(plan_lines(extras))]
    if plots:
        body.append("<h2 id=plots>Plots</h2>")
        body += [f"<figure><img alt='{_e(p.stem)}' src='data:image/png;base64,"
                 f"{base64.b64encode(p.read_bytes()).decode()}'><figcaption class=meta>{_e(p.name)}"
                 "</figcaption></figure>" for p in plots]
    body += ["<h2 id=config>Config diff</h2>", _config_section(lb, runs)]
    body += ["<h2 id=runs>Runs</h2>", _runs_table(runs, out_dir, sources)]
    if extras.skipped:
        body += [f"<h2 id=skipped>Skipped run dirs ({len(extras.skipped)})</h2>",
                 "<table class=sortable><thead><tr><th class=l>run dir</th><th class=l>reason</th></tr></thead><tbody>"
                 + "".join(f"<tr><td class=l>{_link(s.path, out_dir, _relative(s.path, sources))}</td>"
                           f"<td class=l>{_inline(s.reason)}</td></tr>" for s in extras.skipped)
                 + "</tbody></table>"]
    page = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>lossbench comparison</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + f"<script>{_SCRIPT}</script></body></html>\n")
    path.write_text(page, encoding="utf-8")
    return path


def _leaderboard_table(lb: Leaderboard, part: pd.DataFrame) -> str:
    heads = ["rank", "loss", "n", "failed"]
    for m in lb.metrics:
        heads.append(m + ("" if higher_is_better(m) else " ↓"))
        if m == lb.rank_by:
            heads.append("time (s)")
    heads.append("converged")
    rows = ["<div class=scroll><table class='leaderboard sortable'><thead><tr>"
            + "".join(f"<th{' class=l' if h == 'loss' else ''}>{_e(h)}</th>" for h in heads) + "</tr></thead><tbody>"]
    base = lb.baseline_label(part)
    for label, (_, row) in zip(row_labels(part), part.iterrows()):
        cls = " class=best" if row["rank"] == 1 else (" class=failed" if row["n_runs"] == 0 else
                                                     " class=base" if label == base else "")
        cells = [f"<td data-v='{_v(row['rank'])}'>{_e(rank_cell(row, lb.rank_by))}</td>",
                 f"<td class=l>{_e(label)}{' †' if row['n_failed'] else ''}"
                 f"{' <small>(baseline)</small>' if label == base else ''}</td>",
                 f"<td>{row['n_runs']}</td>", f"<td>{row['n_failed']}</td>"]
        for m in lb.metrics:
            c = column(m)
            cells.append(f"<td data-v='{_v(row[c + '_mean'])}'>{_metric_html(metric_cell(row, m))}</td>")
            if m == lb.rank_by:
                cells.append(f"<td data-v='{_v(row['train_time_s'])}'>{fmt(row['train_time_s'], 1)}</td>")
        cells.append(f"<td data-v='{_v(row['converged'])}'>{fmt(row['converged'], 2)}</td>")
        rows.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return "".join(rows) + "</tbody></table></div>"


def _tests_table(lb: Leaderboard, part: pd.DataFrame) -> str:
    rows = ["<div class=scroll><table class=sortable><thead><tr><th class=l>loss</th>"
            + "".join(f"<th>Δ {_e(m)} <small>[CI]; p, Holm; effect</small></th>" for m in lb.metrics)
            + "</tr></thead><tbody>"]
    base = lb.baseline_label(part)
    for label, (_, row) in zip(row_labels(part), part.iterrows()):
        if label == base:
            continue
        cells = [f"<td class=l>{_e(label)}</td>"]
        for m in lb.metrics:
            sig = " class=sig" if significant(lb, row, m) else ""
            cells.append(f"<td{sig} data-v='{_v(row[column(m) + '_delta'])}'>{_e(test_cell(lb, row, m))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(rows) + "</tbody></table></div>"


def _family_tables(lb: Leaderboard, key, part: pd.DataFrame) -> list[str]:
    """Per-class (``iou/k``, ``object_recall/k``, ``ap/k``, ...) and by-size tables, mean [CI] per row."""
    runs_by_label = {label: [r for r in lb.runs_of(key, row) if r.completed]
                     for label, (_, row) in zip(row_labels(part), part.iterrows())}
    every = [r for rs in runs_by_label.values() for r in rs]
    present = sorted({k[len(lb.split) + 1:] for r in every for k in r.metrics if k.startswith(lb.split + "/")})
    names = class_names(every)
    out = []
    for family in CLASS_FAMILIES:
        ks = sorted(int(m.split("/", 1)[1]) for m in present if m.startswith(family + "/") and m.split("/", 1)[1].isdigit())
        if ks:
            heads = [f"{k} {names[k]}" if k < len(names) else str(k) for k in ks]
            out.append(_summary_table(f"Per class: {family}{'' if higher_is_better(family) else ' (lower is better)'}",
                                      [f"{family}/{k}" for k in ks], heads, runs_by_label, lb))
    size = []
    for stem in SIZE_FAMILIES.get(every[0].task if every else "", ()):
        size += [m for m in present if m.startswith(stem)] if stem.endswith("/") else [m for m in present if m == stem]
    if size:
        size = sorted(size, key=bucket_order) if size[0].startswith("small_recall/") else size
        out.append(_summary_table("By object size", size, size, runs_by_label, lb))
    return out


def _summary_table(title: str, metrics: list[str], heads: list[str], runs_by_label: dict[str, list[Run]],
                   lb: Leaderboard) -> str:
    rows = [f"<h4>{_e(title)} <small>mean [{lb.confidence:.0%} t interval] over seeds</small></h4>"
            "<div class=scroll><table class=sortable><thead><tr><th class=l>loss</th>"
            + "".join(f"<th>{_e(h)}</th>" for h in heads) + "</tr></thead><tbody>"]
    for label, runs in runs_by_label.items():
        cells = [f"<td class=l>{_e(label)}</td>"]
        for m in metrics:
            s = summarize([r.metric(f"{lb.split}/{m}") for r in runs], lb.confidence, lb.ci_method)
            ci = f"<br><small>[{fmt(s.ci_low)}, {fmt(s.ci_high)}]</small>" if s.n > 1 else ""
            cells.append(f"<td data-v='{_v(s.mean)}'>{fmt(s.mean)}{ci}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(rows) + "</tbody></table></div>"


def _ranks_table(across) -> str:
    rows = "".join(f"<tr><td class=l>{_e((r['loss'] + ' ' + r['loss_params']).strip())}</td>"
                   f"<td data-v='{_v(r['avg_rank'])}'>{fmt(r['avg_rank'], 2)}</td><td>{r['n_blocks']}</td></tr>"
                   for _, r in across.ranks.iterrows())
    return (f"<p class=meta>Friedman χ² = {fmt(across.statistic, 2)}, p = {fmt_p(across.p)}, "
            f"n_blocks = {across.n_blocks}, Nemenyi CD = {fmt(across.cd, 2)} ranks</p>"
            "<table class=sortable><thead><tr><th class=l>loss</th><th>avg rank</th><th>n_blocks</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _markdown_block(lines: list[str]) -> list[str]:
    """The few Markdown shapes the summary lines use — paragraphs, ``- `` items, pipe tables — as HTML."""
    out, table = [], []
    for line in [*lines, ""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                table.append([c.strip() for c in line.strip("|").split("|")])
            continue
        if table:
            head, *rest = table
            out.append("<table class=sortable><thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in head)
                       + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td class=l>{_inline(c)}</td>" for c in r)
                                                         + "</tr>" for r in rest) + "</tbody></table>")
            table = []
        if line:
            out.append(f"<p class=meta>{_inline(line.removeprefix('- '))}</p>")
    return out


def _metric_html(cell: str) -> str:
    """``mean ± std [low, high]`` with the CI on its own smaller line, to keep columns narrow."""
    head, sep, ci = cell.partition(" [")
    return _e(head) + (f"<br><small>[{_e(ci)}</small>" if sep else "")


_ROLES = {"table": "splits tables", "row": "splits rows (loss setting)", "edited": "WARNING: differs within a table/row",
          "cosmetic": "ignored (cannot change the numbers)", "per-run": "per run (seed)", "loss name": "follows the loss",
          "same within tables": "differs only between tables (datamodule/model)"}


def _config_section(lb: Leaderboard, runs: list[Run]) -> str:
    parts = []
    shared = shared_overrides(runs)
    if shared:
        parts.append("<p>Overrides shared by every run: " + " ".join(f"<code>{_e(o)}</code>" for o in shared) + "</p>")
    varying = lb.grouping.varying
    if not varying:
        return "".join(parts) + "<p>The resolved configs do not differ.</p>"
    rows = "".join(
        f"<tr><td class=l><code>{_e(k)}</code></td><td class=l>{_e(_ROLES.get(lb.grouping.roles.get(k, ''), ''))}</td>"
        "<td class=l>" + ", ".join(f"<code>{_e(v)}</code> ×{n}" for v, n in sorted(counts.items())[:8])
        + (" …" if len(counts) > 8 else "") + "</td></tr>"
        for k, counts in varying.items())
    return ("".join(parts) + "<p>Resolved-config keys whose values differ between runs, and how the comparison "
            "treats them (values compared after parsing; value ×runs):</p>"
            "<div class=scroll><table class=sortable><thead><tr><th class=l>key</th><th class=l>treated as</th>"
            f"<th class=l>values</th></tr></thead><tbody>{rows}</tbody></table></div>")


def _runs_table(runs: list[Run], out_dir: Path, sources: list[Path]) -> str:
    head = ["run dir", "status", "datamodule", "model", "loss", "seed", "epochs", "best epoch", "wall time (s)",
            "W&B", "error"]
    rows = []
    for r in runs:
        cells = [_link(r.path, out_dir, _relative(r.path, sources)), _e(r.status), _e(r.datamodule), _e(r.model),
                 _e(r.loss), _e(str(r.seed)), _e(str(r.record.get("epochs", "–"))),
                 _e("–" if r.best_epoch is None else str(r.best_epoch)), fmt(r.wall_time_s, 1),
                 _wandb_link(r.path, out_dir), _e(r.error or "")]
        cls = " class=failed" if not r.completed else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td class=l>{c}</td>" for c in cells) + "</tr>")
    return ("<div class=scroll><table class='runs sortable'><thead><tr>" + "".join(f"<th class=l>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def _link(target: Path, out_dir: Path, text: str) -> str:
    return f"<a href='{_e(Path(os.path.relpath(target, out_dir)).as_posix())}/'>{_e(text)}</a>"


def _wandb_link(run_dir: Path, out_dir: Path) -> str:
    """The run's local W&B dir (``wandb/offline-run-*`` or ``wandb/run-*``), for ``wandb sync`` or browsing."""
    wandb_dir = run_dir / "wandb"
    if not wandb_dir.is_dir():
        return ""
    found = sorted(p for p in wandb_dir.iterdir() if p.is_dir() and p.name.startswith(("offline-run-", "run-")))
    return _link(found[-1], out_dir, found[-1].name) if found else ""


def _shown(source: Path) -> str:
    """A source dir as the header shows it: relative to the working directory when it lies below it (so a
    report committed beside its runs names no machine path), else absolute."""
    cwd = Path.cwd().resolve()
    return str(source.relative_to(cwd)) if source.is_relative_to(cwd) else str(source)


def _relative(path: Path, sources: list[Path]) -> str:
    for s in sources:
        if path == s or s in path.parents:
            return str(Path(s.name) / path.relative_to(s))
    return str(path)


def _v(x: object) -> str:
    """A ``data-v`` sort key: the number, or empty for a missing value."""
    return "" if x is None or (isinstance(x, float) and x != x) else str(x)


def _e(text: str) -> str:
    return html.escape(str(text))


def _inline(text: str) -> str:
    """Escape, then render Markdown's `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

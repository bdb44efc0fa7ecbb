"""``report.html``: one self-contained page (inline CSS, base64 PNGs, no scripts, no network)."""
from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path

from reporting.collect import Run
from reporting.configdiff import ConfigDiff
from reporting.leaderboard import Leaderboard, column
from reporting.markdown import describe, fmt, grouped, metric_cell

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem auto;max-width:1200px;
     color:#1d2330;background:#fff;padding:0 1rem}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde}
h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #cdd3de;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#eef1f7}td.l,th.l{text-align:left}
tr.best td{background:#e7f6e7;font-weight:600}tr.failed td{color:#a12}
.meta{color:#556;font-size:.85rem}ul.notes{font-size:.85rem;color:#334}li.warn{color:#a12;font-weight:600}
.scroll{overflow-x:auto}small{color:#556;font-weight:400}
img{max-width:100%;border:1px solid #e3e6ec;margin:.4rem 0}
code{background:#f3f4f7;padding:0 .2rem}
"""


def write_report(path: Path, lb: Leaderboard, runs: list[Run], plots: list[Path], diff: ConfigDiff,
                 sources: list[Path]) -> Path:
    """Write the report to ``path`` and return it."""
    body = [
        f"<h1>lossbench comparison — {html.escape(runs[0].task)}</h1>",
        f"<p class=meta>{len(runs)} runs ({sum(r.completed for r in runs)} completed) from "
        f"{', '.join(f'<code>{html.escape(str(s))}</code>' for s in sources)} · generated "
        f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>",
        "<h2 id=leaderboard>Leaderboard</h2>",
        "<ul class=notes>" + "".join(f"<li{' class=warn' if line.startswith('WARNING') else ''}>{_inline(line)}</li>"
                                     for line in describe(lb)) + "</ul>",
    ]
    for title, part in grouped(lb.table):
        body += [f"<h3>{html.escape(title)}</h3>", _leaderboard_table(lb, part)]
    if plots:
        body.append("<h2 id=plots>Plots</h2>")
        body += [f"<figure><img alt='{html.escape(p.stem)}' src='data:image/png;base64,"
                 f"{base64.b64encode(p.read_bytes()).decode()}'><figcaption class=meta>{html.escape(p.name)}"
                 "</figcaption></figure>" for p in plots]
    body += ["<h2 id=config>Config diff</h2>", _config_section(diff)]
    body += ["<h2 id=runs>Runs</h2>", _runs_table(runs, sources)]
    page = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>lossbench comparison</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
    path.write_text(page, encoding="utf-8")
    return path


def _leaderboard_table(lb: Leaderboard, part) -> str:
    rb = column(lb.rank_by)
    head = ["rank", "loss", "n", "failed", *lb.metrics, f"Δ {lb.rank_by} vs {lb.baseline}", "p", "effect"]
    rows = ["<table class=leaderboard><thead><tr>"
            + "".join(f"<th{' class=l' if h == 'loss' else ''}>{html.escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>"]
    for _, row in part.iterrows():
        cls = " class=best" if fmt(row["rank"]) == "1" else (" class=failed" if row["n_runs"] == 0 else "")
        cells = [fmt(row["rank"]), row["loss"], row["n_runs"], row["n_failed"]]
        tail = [fmt(row[f"{rb}_delta"], 4), fmt(row[f"{rb}_p"], 4), fmt(row[f"{rb}_effect"], 2)]
        rows.append(f"<tr{cls}>"
                    + "".join(f"<td{' class=l' if i == 1 else ''}>{html.escape(str(c))}</td>" for i, c in enumerate(cells))
                    + "".join(f"<td>{_metric_html(metric_cell(row, m))}</td>" for m in lb.metrics)
                    + "".join(f"<td>{c}</td>" for c in tail) + "</tr>")
    return "<div class=scroll>" + "".join(rows) + "</tbody></table></div>"


def _metric_html(cell: str) -> str:
    """``mean ± std [low, high]`` with the CI on its own smaller line, to keep columns narrow."""
    head, sep, ci = cell.partition(" [")
    return html.escape(head) + (f"<br><small>[{html.escape(ci)}</small>" if sep else "")


def _config_section(diff: ConfigDiff) -> str:
    parts = []
    if diff.shared_overrides:
        parts.append("<p>Overrides shared by every run: "
                     + " ".join(f"<code>{html.escape(o)}</code>" for o in diff.shared_overrides) + "</p>")
    if not diff.varying:
        return "".join(parts) + "<p>The resolved configs do not differ.</p>"
    rows = "".join(
        f"<tr><td class=l><code>{html.escape(k)}</code></td><td class=l>"
        + ", ".join(f"<code>{html.escape(v)}</code> ×{n}" for v, n in sorted(counts.items())) + "</td></tr>"
        for k, counts in diff.varying.items())
    return ("".join(parts) + "<p>Resolved-config keys whose values differ between runs (value ×runs):</p>"
            f"<table><thead><tr><th class=l>key</th><th class=l>values</th></tr></thead><tbody>{rows}</tbody></table>")


def _runs_table(runs: list[Run], sources: list[Path]) -> str:
    head = ["run dir", "status", "datamodule", "model", "loss", "seed", "wall time (s)", "error"]
    rows = []
    for r in runs:
        cells = [_relative(r.path, sources), r.status, r.datamodule, r.model, r.loss, r.seed,
                 fmt(r.wall_time_s, 1) if isinstance(r.wall_time_s, float) else fmt(r.wall_time_s), r.error or ""]
        cls = " class=failed" if not r.completed else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td class=l>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ("<table class=runs><thead><tr>" + "".join(f"<th class=l>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _relative(path: Path, sources: list[Path]) -> str:
    for s in sources:
        if path == s or s in path.parents:
            return str(Path(s.name) / path.relative_to(s))
    return str(path)


def _inline(text: str) -> str:
    """Escape, then render Markdown's `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

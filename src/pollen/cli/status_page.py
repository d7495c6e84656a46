"""`pollen status --html FILE`: one self-contained page with the status report and its charts.

Charts are inline SVG written here in Python: no JavaScript library to embed (a charting library would add 200 KB
to 1 MB to every page, or a network fetch at view time, which the page must not need), the page stays a few tens of
KB, it renders the same in any browser, and it prints. A Content-Security-Policy forbids every fetch, so the page
cannot reach the network even by mistake. One small inline script only marks the page as rendered (the browser test
reads it) and counts the charts.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from pollen.jobs.status import StatusReport, format_duration

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40
COLOURS = {"written": "#2e7d32", "unchanged": "#90a4ae", "failed": "#c62828", "calls": "#1565c0", "quota": "#ef6c00"}
SERIES_COLOURS = ("#1565c0", "#6a1b9a", "#ef6c00")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def compact(value: float, *, fine: bool = False) -> str:
    """An axis label short enough for the margin: 1.2M, 25k, 7.5."""
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.3g}k"
    return f"{value:,.1f}" if fine else f"{value:,.0f}"


def _axis(max_value: float, labels: Sequence[str], unit: str = "") -> list[str]:
    """Axes, four horizontal gridlines with values, and up to eight x labels."""
    parts: list[str] = []
    plot_h = HEIGHT - TOP - BOTTOM
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        value = max_value * i / 4
        text = f"{value:.0%}" if unit == "%" else compact(value, fine=max_value < 10)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(text)}</text>')
    step = max(1, len(labels) // 8 + (len(labels) % 8 > 0))
    plot_w = WIDTH - LEFT - RIGHT
    for i, label in enumerate(labels):
        if i % step:
            continue
        x = LEFT + plot_w * (i + 0.5) / max(1, len(labels))
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{_e(label)}</text>')
    return parts


def _svg(name: str, title: str, points: int, body: list[str], legend: Sequence[tuple[str, str]]) -> str:
    keys = "".join(
        f'<span class="key"><i style="background:{colour}"></i>{_e(label)}</span>' for label, colour in legend
    )
    return (
        f"<figure><figcaption>{_e(title)}</figcaption>"
        f'<svg class="chart" data-chart="{_e(name)}" data-points="{points}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{_e(title)}">'
        + "".join(body)
        + f"</svg><div class='legend'>{keys}</div></figure>"
    )


def line_chart(
    name: str, title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], unit: str = ""
) -> str:
    values = [v for s in series.values() for v in s if v is not None]
    top = max(values, default=0.0)
    top = 1.0 if unit == "%" else (top * 1.1 if top > 0 else 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    body = _axis(top, [label[5:16].replace("T", " ") for label in labels], unit)
    count = 0
    for (label, data), colour in zip(series.items(), SERIES_COLOURS, strict=False):
        coords = [
            (LEFT + plot_w * (i + 0.5) / max(1, len(labels)), TOP + plot_h - plot_h * float(v) / top, v)
            for i, v in enumerate(data)
            if v is not None
        ]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (x, y, v), at in zip(coords, labels, strict=False):
            shown = f"{float(v):.1%}" if unit == "%" else f"{float(v):,.2f}"
            body.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                f"<title>{_e(label)} {_e(at)}: {_e(shown)}</title></circle>"
            )
            count += 1
    return _svg(name, title, count, body, [(k, c) for k, c in zip(series, SERIES_COLOURS, strict=False)])


def bar_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    stacks: dict[str, Sequence[float]],
    *,
    limit: float | None = None,
    limit_label: str = "",
) -> str:
    totals = [sum(stack[i] for stack in stacks.values()) for i in range(len(labels))]
    top = max([*totals, limit or 0.0], default=0.0)
    top = top * 1.1 if top > 0 else 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    body = _axis(top, [label[5:] for label in labels])
    slot = plot_w / max(1, len(labels))
    width = min(48.0, slot * 0.7)
    count = 0
    for i, label in enumerate(labels):
        base = 0.0
        x = LEFT + slot * i + (slot - width) / 2
        for part, values in stacks.items():
            value = float(values[i])
            if value <= 0:
                continue
            height = plot_h * value / top
            y = TOP + plot_h - plot_h * (base + value) / top
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{max(height, 1.0):.1f}" '
                f'fill="{COLOURS.get(part, "#555")}"><title>{_e(label)} {_e(part)}: {value:,.0f}</title></rect>'
            )
            base += value
            count += 1
    legend = [(part, COLOURS.get(part, "#555")) for part in stacks]
    if limit is not None:
        y = TOP + plot_h - plot_h * limit / top
        body.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{COLOURS["quota"]}" '
            f'stroke-dasharray="6 4" stroke-width="2"><title>{_e(limit_label)}: {limit:,.0f}</title></line>'
        )
        legend.append((limit_label, COLOURS["quota"]))
    return _svg(name, title, count, body, legend)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _value(value: Any) -> str:
    return "" if value is None else str(value)


def charts(report: StatusReport) -> list[str]:
    series = report.series
    out: list[str] = []
    if series.snapshots:
        labels = [str(s["at"]) for s in series.snapshots]
        out.append(
            line_chart(
                "coverage",
                "Pollination coverage (share of active assets ever pollenated)",
                labels,
                {"coverage": [s.get("coverage") for s in series.snapshots]},
                unit="%",
            )
        )
        out.append(
            line_chart(
                "age",
                "Fundamentals age, days",
                labels,
                {
                    "median": [s.get("age_median_days") for s in series.snapshots],
                    "90th percentile": [s.get("age_p90_days") for s in series.snapshots],
                },
            )
        )
    for table, points in series.tables_per_day.items():
        if not any(p.written or p.unchanged or p.failed for p in points):
            continue
        out.append(
            bar_chart(
                f"items-{table}",
                f"{table}: items written, unchanged and failed per day",
                [p.day for p in points],
                {
                    "written": [p.written for p in points],
                    "unchanged": [p.unchanged for p in points],
                    "failed": [p.failed for p in points],
                },
            )
        )
    if series.calls_per_day:
        out.append(
            bar_chart(
                "calls",
                "Alpha Vantage calls per day against the daily quota",
                [str(p["day"]) for p in series.calls_per_day],
                {"calls": [float(p["calls"]) for p in series.calls_per_day]},
                limit=float(report.pollination.quota_per_day),
                limit_label="daily quota",
            )
        )
    return out


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.health{padding:10px 14px;border-radius:6px;font-weight:600}
.ok{background:#e8f5e9}.attention{background:#fff8e1}.failing{background:#ffebee}
table{border-collapse:collapse;margin:4px 0 12px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f5f5f5} .charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;border:1px solid #ddd;padding:8px;border-radius:6px}figcaption{font-weight:600;margin-bottom:4px}
svg text{font-size:11px;fill:#555}.grid{stroke:#eee}.legend{font-size:12px}
.key{margin-right:12px}.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
.muted{color:#777}
"""

SCRIPT = """
(function(){var c=document.querySelectorAll('svg.chart');var n=0;
for(var i=0;i<c.length;i++){if(+c[i].getAttribute('data-points')>0){n++;}}
document.body.setAttribute('data-charts',String(c.length));
document.body.setAttribute('data-charts-with-data',String(n));
document.body.setAttribute('data-ready','yes');})();
"""


def render_page(report: StatusReport) -> str:
    fresh, pollination, runs = report.freshness, report.pollination, report.runs
    sections: list[str] = [
        f"<h1>pollen status</h1><p class='muted'>generated {_e(report.generated_at)}</p>",
        f"<p class='health {report.health}' id='health'>{_e(report.health_line)}</p>",
        "<h2>Charts</h2><div class='charts'>" + "".join(charts(report)) + "</div>",
        "<h2>Freshness</h2>",
        _table(
            ["table", "items", "newest lastSyncDate", "oldest lastSyncDate", "covers"],
            [[t.table, _value(t.items), _value(t.newest_sync), _value(t.oldest_sync), t.scope] for t in fresh.tables],
        ),
        _table(
            ["assets active", "assets inactive", "calendar from", "calendar to"],
            [[fresh.assets_active, fresh.assets_inactive, _value(fresh.calendar_first), _value(fresh.calendar_last)]],
        ),
        "<h2>Pollination</h2>",
        _table(
            ["figure", "value"],
            [
                ["pollenated / active", f"{pollination.pollenated} / {pollination.active}"],
                ["coverage", f"{pollination.coverage:.1%}" if pollination.coverage is not None else ""],
                ["fundamentals age median / p90 / oldest (days)", _ages(report)],
                ["due: earnings passed", pollination.due.earnings],
                ["due: never pollenated", pollination.due.never_pollenated],
                ["due: stale", pollination.due.stale],
                ["calls per pollenation", f"{pollination.calls_per_pollenation} ({_measured(report)})"],
                ["pollenations per day (quota, concurrency)", pollination.pollenations_per_day],
                ["backlog clears in", format_duration(pollination.eta_s) if pollination.eta_s is not None else ""],
            ],
        ),
        "<h2>Runs</h2>",
        _table(
            ["job", "started", "outcome", "seconds", "source", "errors"],
            [
                [job, r.started_at, "ok" if r.ok else "FAILED", r.duration_s, r.source, "; ".join(r.errors)]
                for job, r in runs.last.items()
            ],
        ),
        _table(
            ["failed runs (24 h)", "dead letters waiting"],
            [[runs.failures_24h, "; ".join(f"{d.waiting} in {d.where}" for d in runs.dead_letters) or "0"]],
        ),
    ]
    if report.streams is not None:
        sections.append("<h2>Stream sync (local poller)</h2>")
        sections.append(
            _table(
                ["table", "checkpoint", "records pending", "lag (s)"],
                [
                    [s.table, _value(s.checkpoint), f"{s.pending}{'+' if s.capped else ''}", s.lag_s]
                    for s in report.streams
                ],
            )
        )
    sections.append("<h2>What was read</h2><ul>" + "".join(f"<li>{_e(r)}</li>" for r in report.reads) + "</ul>")
    csp = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{csp}\">"
        "<title>pollen status</title><link rel='icon' href='data:,'>"
        f"<style>{STYLE}</style></head><body>" + "".join(sections) + f"<script>{SCRIPT}</script></body></html>\n"
    )


def _ages(report: StatusReport) -> str:
    p = report.pollination
    return " / ".join(_value(v) for v in (p.age_median_days, p.age_p90_days, p.age_oldest_days))


def _measured(report: StatusReport) -> str:
    count = report.pollination.calls_measured_over
    return f"measured over {count} pollenations" if count else "assumed: no pollenation recorded yet"

"""A report as one HTML page: pure, from :class:`~acpbuild.report.data.Report` to a string.

The page needs no server, no network and no script: inline CSS, inline SVG
charts, and media under ``media/`` linked relatively, so it opens from
``file://`` and from a CI artifact alike. Every text a user wrote (names,
prompts, item fields, errors) goes through :func:`html.escape`, attributes
included, so a prompt holding markup stays text.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from acpbuild.report import charts
from acpbuild.report.data import Asset, Card, Past, Report, Section
from acpbuild.words import counted

#: how each status reads
LABELS = {
    "ran": "ran",
    "restored": "restored",
    "uptodate": "up to date",
    "failed": "failed",
    "skipped": "skipped",
    "store": "in the store",
    "stale": "out of date",
    "unbuilt": "not built",
    "built": "built",
}

_CSS = """
:root{--fg:#1d2125;--muted:#5f6b76;--line:#d8dde2;--card:#fff;--bg:#f4f6f8;--accent:#2f6fdb}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header.top,main,nav,section.spend{max-width:1200px;margin:0 auto;padding:0 20px}
header.top{padding-top:24px}
h1{margin:0 0 4px;font-size:26px}
h2{font-size:20px;margin:28px 0 8px}
section.steps{margin-top:24px}
h3{font-size:16px;margin:0;word-break:break-all}
.meta,.muted,.reason{color:var(--muted)}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:6px 14px}
a{color:var(--accent)}
.charts{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{flex:0 1 auto;margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px;max-width:100%;overflow-x:auto}
figcaption{font-weight:600;margin:0 0 4px}
svg.chart{font:12px system-ui,sans-serif;fill:var(--fg);max-width:100%;height:auto}
svg.chart rect{fill:var(--accent)}
svg.chart .axis{stroke:var(--line)}
svg.chart .empty,svg.chart .day{fill:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px;min-width:0}
.card:target,section:target>h2{outline:3px solid var(--accent)}
.card header{display:flex;gap:8px;align-items:baseline;flex-wrap:wrap;margin-bottom:8px}
.card.chosen{border:2px solid #2e8b57}
.status{font-size:12px;padding:1px 8px;border-radius:10px;background:#e8ecef}
.status.ran{background:#dbeafe}.status.restored,.status.store{background:#e0f2e9}
.status.uptodate{background:#eef3e6}.status.failed{background:#fde2e1}
.status.skipped,.status.unbuilt,.status.stale{background:#f3ead2}
.badge{font-size:12px;padding:1px 8px;border-radius:10px;background:#2e8b57;color:#fff}
.score{font-size:12px;color:var(--muted)}
.output img,.output video{display:block;max-width:100%;height:auto;border-radius:4px;background:#000}
.output audio{width:100%}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;border-radius:4px;padding:8px;margin:6px 0;font-size:13px}
.prompt{white-space:pre-wrap;border-left:3px solid var(--accent);padding:4px 8px;margin:8px 0;background:#f6f8fa}
pre.error{background:#fde2e1}
dl.facts{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:8px 0;font-size:13px}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;word-break:break-all}
table.params{border-collapse:collapse;font-size:12px;width:100%}
table.params th,table.params td{border-top:1px solid var(--line);padding:2px 6px;text-align:left;vertical-align:top;word-break:break-word}
table.params th{color:var(--muted);font-weight:normal;white-space:nowrap}
.lineage{font-size:13px;margin:6px 0 0}
details.history{margin-top:8px;font-size:13px}
details.history li{margin:8px 0}
details.history .output img,details.history .output video{max-width:200px}
ul.changes{margin:4px 0;padding-left:18px}
.not-built{color:var(--muted);font-style:italic}
"""


def when(timestamp: float) -> str:
    """A Unix time as ISO 8601 in UTC, to the second."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def anchor(name: str) -> str:
    """The element id of a step's card or a section: ``step-NAME``, with what an id cannot hold encoded."""
    return "step-" + quote(name, safe="[]._-~")


def _link(name: str) -> str:
    return f'<a href="#{escape(anchor(name))}">{escape(name)}</a>'


def _links(names: Iterable[str]) -> str:
    return ", ".join(_link(n) for n in names)


def page(report: Report, posters: set[str]) -> str:
    """The report's ``index.html``; ``posters`` names the videos that have a poster frame under ``media/``."""
    cards = report.cards
    total = sum(c.cost or 0.0 for c in cards)
    head = (
        f"<header class=\"top\"><h1>{escape(report.recipe)}</h1>"
        + (f"<p>{escape(report.description)}</p>" if report.description else "")
        + f'<p class="meta">{escape(report.recipe_file.name)} · {counted(len(cards), "step")} · '
        f"outputs cost {charts.usd(total)} · statuses from {escape(report.source)} · "
        f'report made <time datetime="{when(report.made)}">{when(report.made)}</time></p></header>'
    )
    nav = "<nav><ul>" + "".join(f"<li>{_link(s.name)}</li>" for s in report.sections) + "</ul></nav>"
    body = _sections(report.sections, posters)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(report.recipe)} · acpbuild report</title><style>{_CSS}</style></head>"
        f"<body>{head}{nav}{_spend(report)}<main>{body}</main></body></html>\n"
    )


def _spend(report: Report) -> str:
    figures = [
        ("by-step", f"Spend per step of {report.recipe}", charts.bars("chart-step", f"Spend per step of {report.recipe}", report.by_step)),
        ("by-provider", f"Spend per provider of {report.recipe}", charts.bars("chart-provider", f"Spend per provider of {report.recipe}", report.by_provider)),
        ("by-day", "Spend per day, every recipe in the ledger (UTC)", charts.columns("chart-day", "Spend per day, every recipe in the ledger (UTC)", report.by_day)),
    ]
    inner = "".join(f'<figure class="{cls}"><figcaption>{escape(cap)}</figcaption>{svg}</figure>' for cls, cap, svg in figures)
    return f'<section class="spend" id="spend"><h2>Spend</h2><div class="charts">{inner}</div></section>'


def _sections(sections: list[Section], posters: set[str]) -> str:
    """Sections in build order; a run of plain steps shares one grid."""
    parts: list[str] = []
    plain: list[str] = []
    for section in [*sections, None]:
        if section is not None and section.kind == "step":
            plain.append(_card(section.cards[0], posters))
            continue
        if plain:
            parts.append(f'<section class="steps"><div class="grid">{"".join(plain)}</div></section>')
            plain = []
        if section is not None:
            parts.append(_section(section, posters))
    return "".join(parts)


def _section(section: Section, posters: set[str]) -> str:
    ident = escape(anchor(section.name))
    if section.kind == "foreach":
        title = f"{escape(section.name)} <small class=\"muted\">foreach · {counted(len(section.cards), 'item')}</small>"
        grid = "".join(_card(c, posters) for c in section.cards)
        return f'<section class="foreach" id="{ident}"><h2>{title}</h2>{_para(section.description)}<div class="grid">{grid}</div></section>'
    status = section.status or "unbuilt"
    facts = f'<span class="status {escape(status)}">{escape(LABELS.get(status, status))}</span> {escape(section.merge or "")}: {escape(section.how)}'
    if section.chosen:
        facts += f"; chose {_link(section.chosen)}"
    if section.users:
        facts += f"; used by {_links(section.users)}"
    grid = "".join(_card(c, posters) for c in section.cards)
    return (
        f'<section class="group" id="{ident}"><h2>{escape(section.name)} <small class="muted">group</small></h2>'
        f"{_para(section.description)}<p>{facts}</p>"
        + (f'<p class="reason">{escape(section.reason)}</p>' if section.reason else "")
        + f'<div class="grid">{grid}</div></section>'
    )


def _para(text: str) -> str:
    return f"<p>{escape(text)}</p>" if text else ""


def _card(card: Card, posters: set[str]) -> str:
    classes = " ".join(["card", *(["chosen"] if card.chosen else [])])
    label = LABELS.get(card.status, card.status)
    head = f'<header><h3>{escape(card.item if card.item is not None else card.name)}</h3><span class="status {escape(card.status)}">{escape(label)}</span>'
    if card.chosen:
        head += '<span class="badge">chosen</span>'
    if card.score:
        head += f'<span class="score">{escape(card.score)}</span>'
    head += "</header>"
    parts = [head]
    if card.item_fields:
        rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in card.item_fields.items())
        parts.append(f'<table class="params item"><caption class="muted">item {escape(card.item or "")}</caption>{rows}</table>')
    parts.append(f'<div class="output">{_output(card.asset, card.name, posters)}</div>')
    if card.prompt is not None:
        parts.append(f'<p class="prompt">{escape(card.prompt)}</p>')
    parts.append(_facts(card))
    if card.reason:
        parts.append(f'<p class="reason">why: {escape(card.reason)}</p>')
    if card.error:
        parts.append(f'<pre class="error">{escape(card.error)}</pre>')
    if card.params:
        rows = "".join(
            f"<tr><th>{escape(p.name)}</th><td>{_link(p.step) + ' (' + escape(p.text) + ')' if p.step else escape(p.text)}</td></tr>"
            for p in card.params
        )
        parts.append(f'<table class="params">{rows}</table>')
    lineage = []
    if card.inputs:
        lineage.append(f"inputs: {_links(card.inputs)}")
    if card.users:
        lineage.append(f"used by: {_links(card.users)}")
    if lineage:
        parts.append(f'<p class="lineage">{" · ".join(lineage)}</p>')
    if card.history:
        parts.append(_history(card.history, card.name, posters))
    return f'<article class="{classes}" id="{escape(anchor(card.name))}">{"".join(parts)}</article>'


def _facts(card: Card) -> str:
    facts = [("made by", f"{card.provider}/{card.model}"), ("kind", card.kind)]
    if card.draft_of:
        facts.append(("draft of", card.draft_of))
    if card.cost is not None:
        facts.append(("cost", charts.usd(card.cost)))
    if card.seconds is not None:
        facts.append(("took", f"{card.seconds:.1f} s"))
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    if card.finished is not None:
        rows += f'<dt>generated</dt><dd><time datetime="{when(card.finished)}">{when(card.finished)}</time></dd>'
    if card.key:
        rows += f'<dt>key</dt><dd><code title="{escape(card.key)}">{escape(card.key[:12])}</code></dd>'
    return f'<dl class="facts">{rows}</dl>'


def _output(asset: Asset | None, name: str, posters: set[str]) -> str:
    if asset is None:
        return '<p class="not-built">not built</p>'
    src = escape(f"media/{asset.name}")
    if asset.media == "image":
        return f'<img src="{src}" alt="{escape("output of " + name)}" loading="lazy">'
    if asset.media == "audio":
        return f'<audio controls preload="metadata" src="{src}"></audio>'
    if asset.media == "video":
        poster = f' poster="{escape("media/" + asset.poster)}"' if asset.name in posters else ""
        return f'<video controls preload="metadata"{poster} src="{src}"></video>'
    text = f'<pre class="text">{escape(asset.text or "")}</pre>'
    if asset.truncated:
        text += f'<a href="{src}">… the full text</a>'
    return text


def _history(past: list[Past], name: str, posters: set[str]) -> str:
    items = []
    for gen in past:
        changes = "".join(
            f"<li><code>{escape(c.name)}</code>: {escape(c.before)} → {escape(c.after)}</li>" for c in gen.changes
        ) or "<li>the same parameters (another input changed)</li>"
        stamp = f'<time datetime="{when(gen.finished)}">{when(gen.finished)}</time>' if gen.finished else ""
        items.append(
            f'<li><code title="{escape(gen.key)}">{escape(gen.key[:12])}</code> {stamp} · {charts.usd(gen.cost)}'
            f'<div class="output">{_output(gen.asset, name, posters)}</div><ul class="changes">{changes}</ul></li>'
        )
    count = f"{counted(len(past), 'earlier generation')} in the store"
    return f'<details class="history" open><summary>{count}</summary><ol>{"".join(items)}</ol></details>'

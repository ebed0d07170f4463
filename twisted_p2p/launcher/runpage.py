"""swarm-report.html: the end of a run as one self-contained page, for a projector.

One file of inline CSS and inline SVG and nothing else -- no script, font, image or
link -- so it opens offline, from a mail or a USB stick, looks the same everywhere,
and a screenshot of it is a slide. :func:`render_html` is pure (what the launcher
already has in, text out); :func:`write_html_report` puts it next to swarm-report.json.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from twisted_p2p.config import SwarmConfig
from twisted_p2p.launcher.audit.result import AuditResult, verdict
from twisted_p2p.launcher.progress import PeerProgress
from twisted_p2p.launcher.runreport import file_verdict

REPORT_HTML = "swarm-report.html"
#: Okabe & Ito's colour-blind-safe palette, ordered so neighbouring peers differ most.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
LIGHT = frozenset({"#E69F00", "#56B4E9", "#F0E442"})  # light colours take dark pattern marks
CASED = "#F0E442"  # yellow alone is too faint as a line on white: it gets a dark casing
DASHES = ("", "12 6", "3 5", "14 5 3 5")  # each round through the palette: a line style ...
MARKS = ("", "stripes", "dots", "bars")  # ... and a fill pattern, so 32 peers stay apart
SEED_COLOUR = "#8C8C8C"  # pieces a seed started with: neutral, not any peer's colour
UNKNOWN_COLOUR = "#D4D4D4"  # a finished peer's pieces whose download was not logged
MAX_CELLS = 2500  # squares per piece map; beyond it a square stands for several pieces
FINDINGS_SHOWN = 10
Progress = Mapping[int, PeerProgress] | Iterable[PeerProgress]

CSS = """
body{font:20px/1.45 system-ui,'Segoe UI',Helvetica,Arial,sans-serif;color:#111;background:#fff;margin:0}
main{max-width:1500px;margin:0 auto;padding:24px 32px 48px}
h1{font-size:38px;margin:0 0 12px}h2{font-size:29px;margin:36px 0 10px;border-bottom:3px solid #111}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 24px;margin:0}dt{font-weight:700}dd{margin:0}
code{font:18px ui-monospace,Menlo,Consolas,monospace;overflow-wrap:anywhere}
table{border-collapse:collapse}th,td{border:1px solid #666;padding:5px 12px;text-align:left}
th{background:#e8e8e8}td.n{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}.small th,.small td{font-size:14px;padding:2px 3px}
.good,.bad{display:inline-block;padding:0 10px;border:2px solid;border-radius:6px;font-weight:700}
.good{background:#d9f2e9;border-color:#009E73;color:#003d2c}.bad{background:#fbe2d5;border-color:#D55E00;color:#6b2500}
.key{display:flex;flex-wrap:wrap;gap:6px 22px;margin:8px 0 14px}.key span{white-space:nowrap}
.key svg,td svg,th svg,figcaption svg{vertical-align:-3px;margin-right:6px}th,td:first-child{white-space:nowrap}
.maps{display:flex;flex-wrap:wrap;gap:22px 34px}.maps figure{margin:0}.maps figcaption{font-weight:700}
.host{font-weight:400;color:#444}
td.from{font-size:16px}
ul.lines{padding-left:24px}ul.lines li{font:18px ui-monospace,Menlo,Consolas,monospace}
"""


class Look:
    """How one peer is drawn everywhere: its colour, line dash and fill (colour or pattern)."""

    def __init__(self, index: int) -> None:
        self.colour = PALETTE[index % len(PALETTE)]
        self.round = index // len(PALETTE) % len(DASHES)
        self.dash = DASHES[self.round]
        self.pattern = f"p{self.round}-{index % len(PALETTE)}"
        self.fill = self.colour if self.round == 0 else f"url(#{self.pattern})"

    def pattern_def(self) -> str:
        """The <pattern> of a look past the first round: the colour with white or black marks."""
        mark = "#000" if self.colour in LIGHT else "#fff"
        shape = {"stripes": '<rect width="2.5" height="7"', "dots": '<circle cx="3.5" cy="3.5" r="1.8"',
                 "bars": '<rect width="7" height="2.5"'}[MARKS[self.round]]
        turn = ' patternTransform="rotate(45)"' if MARKS[self.round] == "stripes" else ""
        return (f'<pattern id="{self.pattern}" width="7" height="7" patternUnits="userSpaceOnUse"{turn}>'
                f'<rect width="7" height="7" fill="{self.colour}"/>{shape} fill="{mark}"/></pattern>')

    def swatch(self, size: int = 20) -> str:
        return (f'<svg width="{size}" height="{size}" aria-hidden="true"><rect width="{size}" height="{size}"'
                f' fill="{self.fill}" stroke="#333"/></svg>')


def render_html(report: dict[str, Any], progress: Progress, config: SwarmConfig,
                audit: AuditResult | None = None) -> str:
    """The whole page as a string: header, summary, timeline, piece maps, matrix, audit."""
    by_id = dict(progress) if isinstance(progress, Mapping) else {p.peer_id: p for p in progress}
    order = [peer.peer_id for peer in config.peers]
    order += [int(peer["id"]) for peer in report["peers"] if int(peer["id"]) not in order]
    looks = {peer_id: Look(index) for index, peer_id in enumerate(order)}
    seeds = {peer.peer_id for peer in config.peers if peer.has_file}
    total = int(report["file"].get("pieces") or config.common.num_pieces)
    per = max(1, math.ceil(total / MAX_CELLS))
    cells = math.ceil(total / per)
    columns = max(1, min(cells, 50, math.ceil(math.sqrt(cells * 2))))
    size = max(6, min(20, 360 // columns // 2 * 2))  # three maps to a row on a 1280-pixel screen
    defs = "".join(look.pattern_def() for look in looks.values() if look.round) + _cell_patterns(size)
    body = [
        _header(report, config),
        "<h2>Peers</h2>", _summary(report, looks),
        "<h2>Pieces held over time</h2>", _timeline(report, looks, total),
        "<h2>Where each peer's pieces came from</h2>",
        _map_key(looks, seeds, per),
        '<div class="maps">',
        *(_piece_map(by_id[peer_id], looks, total, per, columns, size) for peer_id in order if peer_id in by_id),
        "</div>",
        "<h2>Pieces received (rows: receiver, columns: sender)</h2>", _matrix(report, looks, order),
        "<h2>Audit of the event logs</h2>", _audit(audit),
    ]
    title = escape(f"Swarm report: {report['file'].get('name', '')}")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title>'
            f"<style>{CSS}</style></head><body>"
            f'<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>{defs}</defs></svg>'
            f"<main>{''.join(body)}</main></body></html>\n")


def write_html_report(work_dir: Path, report: dict[str, Any], progress: Progress, config: SwarmConfig,
                      audit: AuditResult | None = None) -> Path:
    """Write swarm-report.html in ``work_dir`` (see :func:`render_html`) and return its path."""
    path = Path(work_dir) / REPORT_HTML
    path.write_text(render_html(report, progress, config, audit), encoding="utf-8")
    return path


def _badge(good: bool, text: str) -> str:
    return f'<span class="{"good" if good else "bad"}">{escape(text)}</span>'


def _header(report: dict[str, Any], config: SwarmConfig) -> str:
    info = report["file"]
    size, sha = int(info.get("size") or 0), info.get("sha256")
    facts = {
        "Size": f"{size:,} bytes" + (f" ({size / 2**20:.1f} MiB)" if size >= 2**20 else ""),
        "Pieces": f"{int(info.get('pieces') or 0):,} of {config.common.piece_size:,} bytes",
        "Outcome": _badge(report.get("outcome") == "finished", str(report.get("outcome"))),
        "Duration": f"{float(report.get('duration') or 0):.1f} s",
        "Exit code": escape(str(report.get("exit_code"))),
        "SHA-256": f"<code>{escape(str(sha))}</code>" if sha else "unknown (no complete copy here)",
    }
    rows = [f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts.items()]
    peers, seeds = len(report["peers"]), sum(peer.has_file for peer in config.peers)
    return (f"<h1>Swarm report: {escape(str(info.get('name', '')))}</h1>"
            f"<p>{peers} peer{'s' if peers != 1 else ''}, {seeds} seed{'s' if seeds != 1 else ''}.</p>"
            f"<dl>{''.join(rows)}</dl>")


def _peer_cell(peer_id: int, looks: Mapping[int, Look]) -> str:
    look = looks.get(peer_id)
    return (look.swatch() if look else "") + escape(str(peer_id))


def _summary(report: dict[str, Any], looks: Mapping[int, Look]) -> str:
    rows = ["<tr><th>peer</th><th>host</th><th>exit</th><th>time to complete</th><th>file check</th>"
            "<th>pieces received from</th></tr>"]
    wide = ' class="from"' if len(report["peers"]) > 9 else ""  # many neighbours: smaller, fewer lines
    for peer in report["peers"]:
        status = peer.get("exit_status")
        exit_text = "not run" if status is None else (f"signal {-status}" if status < 0 else str(status))
        if peer.get("seed"):
            done = "seed"
        elif peer.get("seconds_to_complete") is None:
            done = _badge(False, "no")
        else:
            done = f"{peer['seconds_to_complete']:.2f} s"
        word = file_verdict(peer.get("sha256_ok"), bool(peer.get("seed")), peer.get("seconds_to_complete") is not None)
        check = word if peer.get("sha256_ok") is None else _badge(word == "ok", word)
        received = ", ".join(f"{escape(str(other))}: {count}" for other, count in peer["received_from"].items())
        rows.append(f"<tr><td>{_peer_cell(int(peer['id']), looks)}</td><td>{escape(str(peer.get('host', '')))}</td>"
                    f"<td>{_badge(status == 0, exit_text)}</td><td>{done}</td><td>{check}</td>"
                    f"<td{wide}>{received or '&ndash;'}</td></tr>")
    return f'<div class="scroll"><table>{"".join(rows)}</table></div>'


def _ticks(top: float) -> list[float]:
    """Round tick values from 0 to ``top``: steps of 1, 2 or 5 times a power of ten."""
    rough = top / 6
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    return [k * step for k in range(int(top / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def _step_path(pixels: list[tuple[int, int]], end_x: int) -> str:
    """An SVG path through ``pixels`` (x, y) in steps to ``end_x``: across, then up, with
    no step where y stays and one V where several points share a pixel column."""
    last_x, last_y = pixels[0]
    steps = [f"M{last_x} {last_y}"]
    for px, py in pixels[1:]:
        if py == last_y:
            continue
        if px != last_x:
            steps.append(f"H{px}")
            last_x = px
        if steps[-1][0] == "V":
            steps[-1] = f"V{py}"
        else:
            steps.append(f"V{py}")
        last_y = py
    if end_x != last_x:
        steps.append(f"H{end_x}")
    return "".join(steps)


def _timeline(report: dict[str, Any], looks: Mapping[int, Look], total: int) -> str:
    """Step lines of pieces held, in pixels rounded so a long run costs at most one H and
    one V per pixel column or row, whatever the piece count."""
    left, top, width, height = 100, 20, 1000, 440
    series = {int(k): v for k, v in report.get("timeline", {}).items() if v}
    end = max([float(report.get("duration") or 0)] + [pts[-1][0] for pts in series.values()]) or 1.0
    ymax = max(total, 1)

    def x(t: float) -> int:
        return round(left + t / end * width)

    def y(held: float) -> int:
        return round(top + height - held / ymax * height)

    out = ['<g font-size="18" fill="#111">']
    for t in _ticks(end):
        out.append(f'<line x1="{x(t)}" x2="{x(t)}" y1="{top}" y2="{top + height + 8}" stroke="#ccc"/>'
                   f'<text x="{x(t)}" y="{top + height + 30}" text-anchor="middle">{_label(t)}</text>')
    for held in _ticks(ymax):
        out.append(f'<line x1="{left - 8}" x2="{left + width}" y1="{y(held)}" y2="{y(held)}" stroke="#ccc"/>'
                   f'<text x="{left - 12}" y="{y(held) + 6}" text-anchor="end">{_label(held)}</text>')
    out.append(f'<path d="M{left} {top}V{top + height}H{left + width}" stroke="#111" stroke-width="2" fill="none"/>'
               f'<text x="{left + width / 2}" y="{top + height + 62}" text-anchor="middle" font-size="20">'
               f'seconds since start</text><text transform="translate(24 {top + height / 2}) rotate(-90)"'
               f' text-anchor="middle" font-size="20">pieces held</text></g>')
    for peer_id, points in series.items():
        look = looks.get(peer_id) or Look(0)
        d = _step_path([(x(t), y(held)) for t, held in points], x(end))
        dash = f' stroke-dasharray="{look.dash}"' if look.dash else ""
        if look.colour == CASED:
            out.append(f'<path d="{d}" stroke="#444" stroke-width="5" fill="none"{dash}/>')
        out.append(f'<path class="peer-line" data-peer="{peer_id}" d="{d}" stroke="{look.colour}" stroke-width="3"'
                   f' fill="none" stroke-linejoin="round"{dash}><title>peer {peer_id}</title></path>')
    legend_y = top + height + 100  # below the plot, a row per round through the palette
    for index, peer_id in enumerate(series):
        look = looks.get(peer_id) or Look(0)
        lx, ly = left + index % len(PALETTE) * 130, legend_y + index // len(PALETTE) * 30
        dash = f' stroke-dasharray="{look.dash}"' if look.dash else ""
        casing = (f'<line x1="{lx}" x2="{lx + 40}" y1="{ly}" y2="{ly}" stroke="#444" stroke-width="6"{dash}/>'
                  if look.colour == CASED else "")
        out.append(f'{casing}<line x1="{lx}" x2="{lx + 40}" y1="{ly}" y2="{ly}" stroke="{look.colour}"'
                   f' stroke-width="4"{dash}/><text x="{lx + 48}" y="{ly + 6}" font-size="18">{peer_id}</text>')
    full_w, full_h = left + width + 20, legend_y + math.ceil(len(series) / len(PALETTE)) * 30
    return (f'<svg class="timeline" viewBox="0 0 {full_w} {full_h}" width="100%" style="max-width:{full_w}px"'
            f' role="img" aria-label="pieces held over time">{"".join(out)}</svg>')


def _cell_patterns(size: int) -> str:
    """The white gaps between squares and the outlined empty square of a missing piece."""
    gap = max(1, size // 8)
    inner = size - gap
    return (f'<pattern id="gap" width="{size}" height="{size}" patternUnits="userSpaceOnUse">'
            f'<rect x="{inner}" width="{gap}" height="{size}" fill="#fff"/>'
            f'<rect y="{inner}" width="{size}" height="{gap}" fill="#fff"/></pattern>'
            f'<pattern id="miss" width="{size}" height="{size}" patternUnits="userSpaceOnUse">'
            f'<rect width="{size}" height="{size}" fill="#fff"/><rect x="1" y="1" width="{inner - 2}"'
            f' height="{inner - 2}" fill="#fff" stroke="#333" stroke-width="1.5"/></pattern>')


def _origins(peer: PeerProgress, total: int) -> list[int | str]:
    """Per piece: the neighbour it came from, 'seed', 'unknown' (a finished peer's piece
    whose download was not logged) or 'missing'."""
    if peer.seed:
        return ["seed"] * total
    rest = "unknown" if peer.completed_at is not None else "missing"
    return [peer.pieces.get(index, rest) for index in range(total)]


def _piece_map(peer: PeerProgress, looks: Mapping[int, Look], total: int, per: int, columns: int,
               size: int) -> str:
    """One path per colour, each run of same-colour squares in a row one stroked segment,
    so even 10,000 random sources stay a few tens of kilobytes."""
    origins = _origins(peer, total)
    cells: list[int | str] = []
    for start in range(0, total, per):
        block = origins[start:start + per]
        cells.append("missing" if "missing" in block else Counter(block).most_common(1)[0][0])
    runs: dict[int | str, list[str]] = {}
    for row_start in range(0, len(cells), columns):
        row = cells[row_start:row_start + columns]
        column = 0
        while column < len(row):
            end = column
            while end + 1 < len(row) and row[end + 1] == row[column]:
                end += 1
            y = row_start // columns * size + size // 2
            runs.setdefault(row[column], []).append(f"M{column * size} {y}h{(end - column + 1) * size}")
            column = end + 1
    colours = {"seed": SEED_COLOUR, "unknown": UNKNOWN_COLOUR, "missing": "url(#miss)"}
    paths = []
    for key, segments in runs.items():
        paint = colours[key] if isinstance(key, str) else (looks[key].fill if key in looks else "#777")
        paths.append(f'<path data-from="{escape(str(key))}" stroke="{paint}" d="{"".join(segments)}"/>')
    rows = math.ceil(len(cells) / columns)
    w, h = columns * size, rows * size
    look = looks.get(peer.peer_id)
    return (f'<figure style="max-width:{max(w, 240)}px"><figcaption>{look.swatch() if look else ""}peer'
            f' {peer.peer_id}: {peer.held:,}/{total:,}{" (seed)" if peer.seed else ""}'
            f' <span class="host">{escape(peer.host)}</span></figcaption>'
            f'<svg class="piece-map" data-peer="{peer.peer_id}" width="{w}" height="{h}" role="img"'
            f' aria-label="piece map of peer {peer.peer_id}"><g fill="none" stroke-width="{size}">{"".join(paths)}</g>'
            f'<rect width="{w}" height="{h}" fill="url(#gap)"/></svg></figure>')


def _map_key(looks: Mapping[int, Look], seeds: set[int], per: int) -> str:
    def item(fill: str, text: str, stroke: str = "#333") -> str:
        return (f'<span><svg width="20" height="20" aria-hidden="true"><rect x="1" y="1" width="18" height="18"'
                f' fill="{fill}" stroke="{stroke}" stroke-width="1.5"/></svg>{text}</span>')

    entries = [item(look.fill, f"from {peer_id}") for peer_id, look in looks.items()]
    entries += [item(SEED_COLOUR, "a seed's own"), item(UNKNOWN_COLOUR, "held, download not logged"),
                item("#fff", "missing")]
    note = "One square per piece, in index order." if per == 1 else (
        f"Each square stands for {per} consecutive pieces and shows where most of them came from;"
        " a square with any missing piece is drawn missing.")
    return f'<p>{note}</p><div class="key">{"".join(entries)}</div>'


def _matrix(report: dict[str, Any], looks: Mapping[int, Look], order: list[int]) -> str:
    """Counts shaded on one blue scale (dark = many), so the busy senders stand out."""
    received = {int(peer["id"]): {int(k): v for k, v in peer["received_from"].items()} for peer in report["peers"]}
    senders = order + sorted({s for got in received.values() for s in got} - set(order))
    most = max([count for got in received.values() for count in got.values()] or [1])
    small = len(senders) > 12  # then numbers only across the top, so 32 columns fit 1280 pixels
    head = "".join(f"<th>{s}</th>" if small else f"<th>{_peer_cell(s, looks)}</th>" for s in senders)
    rows = [f"<tr><th>receiver \\<br>sender</th>{head}<th>total</th></tr>"]
    for receiver in order:
        if receiver not in received:
            continue
        cells = []
        for sender in senders:
            count = received[receiver].get(sender, 0)
            if sender == receiver:
                cells.append('<td class="n">&ndash;</td>')
                continue
            share = count / most
            shade = tuple(round(a + (b - a) * share) for a, b in zip((247, 251, 255), (8, 48, 107)))
            ink = "#fff" if share > 0.45 else "#111"
            cells.append(f'<td class="n" style="background:rgb{shade};color:{ink}">{count or ""}</td>')
        rows.append(f"<tr><th>{_peer_cell(receiver, looks)}</th>{''.join(cells)}"
                    f'<td class="n"><b>{sum(received[receiver].values()):,}</b></td></tr>')
    return f'<div class="scroll"><table class="matrix{" small" if small else ""}">{"".join(rows)}</table></div>'


def _audit(result: AuditResult | None) -> str:
    if result is None:
        return "<p>Not audited (run <code>p2p-swarm audit WORK_DIR</code>).</p>"
    peers = len(result.config.peers)
    if result.clean:
        head = _badge(True, f"clean: {peers} peers followed the protocol")
    else:
        bad = len({f.peer for f in result.findings} - {None})
        count = len(result.findings)
        head = _badge(False, f"{count} violation{'s' if count != 1 else ''} ({bad} of {peers} peers)")
    verdicts = "".join(f"<li>{escape(verdict(result, peer.peer_id))}</li>" for peer in result.config.peers)
    parts = [f"<p>{head}</p>", f'<ul class="lines">{verdicts}</ul>']
    if result.findings:
        shown = result.findings[:FINDINGS_SHOWN]
        more = len(result.findings) - len(shown)
        parts.append(f"<p>First {len(shown)} finding{'s' if len(shown) != 1 else ''}"
                     f"{f' ({more} more: p2p-swarm audit lists them all)' if more else ''}:</p>"
                     f'<ul class="lines">{"".join(f"<li>{escape(str(f))}</li>" for f in shown)}</ul>')
    if result.notes:
        parts.append(f'<ul class="lines">{"".join(f"<li>{escape(str(n))}</li>" for n in result.notes)}</ul>')
    return "".join(parts)

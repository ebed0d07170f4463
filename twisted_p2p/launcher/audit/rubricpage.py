"""``p2p-swarm audit --rubric --html FILE``: the rubric view as one page for a video.

The page holds exactly the text :func:`~.rubric.rubric` prints, in large type beside
the dashboard, with the item headings, the ``file:line`` references and the "not shown"
lines marked. It is self-contained (inline CSS, no script), like swarm-report.html.
"""
from __future__ import annotations

import re
from html import escape
from pathlib import Path

_HEADING = re.compile(r"^\d+\. ")
_REFERENCE = re.compile(r"^(\s+)(\S+\.log:\d+)(\s+)")
_STYLE = """
body { font: 18px/1.35 system-ui, sans-serif; margin: 1.5em; color: #111; background: #fff; }
pre { font: 16px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; white-space: pre-wrap; }
.item { font: bold 20px system-ui, sans-serif; color: #0072b2; }
.ref { color: #d55e00; font-weight: bold; }
.gap { background: #fff3e0; }
"""


def _continues_heading(line: str) -> bool:
    """A heading wraps with three spaces; notes and log lines start the same way."""
    return (line.startswith("   ") and not line.startswith("    ") and not _REFERENCE.match(line)
            and not line.lstrip().startswith(("note:", "not shown:")))


def render_rubric_page(lines: list[str], title: str) -> str:
    """The rubric's lines as an HTML page (pure: text in, text out)."""
    body = []
    heading = False
    for line in lines:
        text = escape(line)
        if _HEADING.match(line) or (heading and _continues_heading(line)):
            heading = True
            body.append(f'<span class="item">{text}</span>\n')
            continue
        heading = False
        if line.lstrip().startswith("not shown:"):
            body.append(f'<span class="gap">{text}</span>\n')
        elif match := _REFERENCE.match(line):
            indent, where, space = (escape(part) for part in match.groups())
            body.append(f'{indent}<span class="ref">{where}</span>{space}{escape(line[match.end():])}\n')
        else:
            body.append(text + "\n")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{escape(title)}</h1><pre>{''.join(body)}</pre></body></html>\n")


def write_rubric_page(path: Path, lines: list[str], title: str) -> None:
    path.write_text(render_rubric_page(lines, title), encoding="utf-8")

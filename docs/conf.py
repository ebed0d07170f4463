"""Sphinx configuration: the built-in theme and extensions only, so that the docs
build with nothing but ``pip install ".[docs]"``.

The peer's tunables and timings are not written here twice: the list of them is made
at build time from :class:`twisted_p2p.settings.PeerSettings`, the one place their
defaults are defined (``twistd p2ppeer --help`` is made from it too).
"""
from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from twisted_p2p.settings import PeerSettings, option_name  # noqa: E402 (after the path above)

project = "twisted_p2p"
author = "the twisted_p2p authors"
copyright = "the twisted_p2p authors"
release = "0.1.0"

extensions: list[str] = []
root_doc = "index"
exclude_patterns = ["_build", "_generated"]
html_theme = "alabaster"
html_theme_options = {"description": "A P2PFILESHARINGPROJ peer on Twisted"}
# The benchmark page includes bench/results.rst, written by ``python -m bench``.

_METAVAR = {int: "N", float: "SECONDS", str: "ADDRESS"}


def _default(value: object, shown: str | None) -> str:
    if shown is not None:
        return shown
    if isinstance(value, tuple):
        return " to ".join(f"{each:g}" for each in value)
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def settings_reference() -> str:
    """Two definition lists: the options of ``twistd p2ppeer`` that set a tunable, and
    the timings that have no option, each with its default."""
    options, timings = [], []
    for each in fields(PeerSettings):
        meta = each.metadata
        if "help" in meta:
            kind = meta["kind"]
            name = f"--{option_name(each.name)}" + ("" if kind is bool else f" {_METAVAR.get(kind, 'ID,ID,...')}")
            default = "" if kind is bool else f" (default: {_default(each.default, meta['shown'])})"
            options.append(f"``{name}``\n    {meta['help']}{default}\n")
        else:
            timings.append(f"``{each.name}``: {_default(each.default, None)}\n    {meta['about']}\n")
    return ("\n".join(options) + "\nThe timings that have no option (fields of ``PeerSettings`` only):\n\n"
            + "\n".join(timings))


(HERE / "_generated").mkdir(exist_ok=True)
(HERE / "_generated" / "peer-settings.rst").write_text(settings_reference())

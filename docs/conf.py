"""Sphinx configuration: the built-in theme and extensions only, so that the docs
build with nothing but ``pip install ".[docs]"``."""

project = "twisted_p2p"
author = "the twisted_p2p authors"
copyright = "the twisted_p2p authors"
release = "0.1.0"

extensions: list[str] = []
root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {"description": "A P2PFILESHARINGPROJ peer on Twisted"}
# The benchmark page includes bench/results.rst, written by ``python -m bench``.

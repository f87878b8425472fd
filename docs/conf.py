"""Sphinx configuration for the tcpserver docs (``tox -e docs``)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

import tcpserver

project = "tcpserver"
author = "the tcpserver developers"
copyright = "2026, the tcpserver developers"
release = tcpserver.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "tcpserver_docs",
    "myst_parser",  # performance.md
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
html_theme = "furo"
html_title = f"tcpserver {release}"
templates_path: list[str] = []
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False
# Twisted and Python names link to their own docs.  The inventories are made
# offline by tools/inventories.py (the build machines reach no docs sites).
intersphinx_mapping = {
    "twisted": ("https://docs.twisted.org/en/stable/api/", "_inventories/twisted.inv"),
    "python": ("https://docs.python.org/3/", "_inventories/python.inv"),
}
intersphinx_timeout = 5
# Flags (--port) and quoted defaults must paste into a shell as they read:
# no en dashes, no curly quotes.
smartquotes = False

"""Sphinx configuration of procpar's documentation site (``nox -s docs`` builds it with warnings as errors).

Sphinx with the furo theme: the packages' docstrings are reStructuredText already (autodoc renders them as
written), the pages are Markdown (MyST) so that the packages' READMEs and the design notes are included, not
copied, and furo is a current, maintained theme with light and dark modes and a search box.
"""

from __future__ import annotations

project = "procpar"
author = "the procpar developers"
copyright = "2026, the procpar developers"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.intersphinx", "sphinx.ext.viewcode"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "examples"]

html_theme = "furo"
html_title = "procpar"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}
# The docs build offline: no inventories are fetched (intersphinx stays configured for when they are).
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
suppress_warnings = ["myst.xref_missing"]

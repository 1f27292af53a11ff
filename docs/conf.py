"""Sphinx configuration of the xfuxi documentation (built offline; see scripts/docs.sh)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import sphinx_autosummary_accessors

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

import xfuxi  # noqa: E402

project = "xfuxi"
author = "xfuxi developers"
copyright = "xfuxi developers, Apache License 2.0"  # noqa: A001
release = version = xfuxi.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_autosummary_accessors",
    "sphinx_copybutton",
    "sphinx_design",
    "sphinx_gallery.gen_gallery",
    "xfuxi_docs",
]

# the site is built offline: no intersphinx, nothing downloaded
templates_path = ["_templates", sphinx_autosummary_accessors.templates_path]
exclude_patterns = [
    "_build",
    "**.ipynb_checkpoints",
    "gallery/*.py",
    "gallery/*.ipynb",
    "gallery/*.zip",
    "gallery/*.md5",
    "gallery/*.json",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
suppress_warnings = ["myst.header"]  # pages start at ## after the title in some files

# MyST: math, anchors for "#section" links, definition lists, colon fences (sphinx-design)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 4

# API reference: autosummary writes one page per public name (docs/api/, see xfuxi_docs)
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # the numpydoc Parameters sections give the types
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# external types named in docstrings and signatures: no intersphinx offline, so these are
# the only references left unresolved on purpose
nitpick_ignore_regex = [
    (r"py:.*", r"(xarray|xr|numpy|np|pandas|pd|torch|scipy|matplotlib|zarr|jax|dinosaur)\..*"),
    (r"py:.*", r"(xarray|numpy|pandas|torch|matplotlib)"),
]

# sphinx-gallery: examples/gallery/plot_*.py run at every build; the cached world is made
# once before the build (scripts/docs.sh)
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples" / "gallery"),
    "gallery_dirs": "gallery",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "reference_url": {},
    "show_memory": False,
    "min_reported_time": 1,
    "within_subsection_order": "FileNameSortKey",
    "capture_repr": ("_repr_html_", "__repr__"),
}

html_theme = "pydata_sphinx_theme"
html_title = "xfuxi"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "header_links_before_dropdown": 7,
}
html_static_path: list[str] = []
html_show_sourcelink = False

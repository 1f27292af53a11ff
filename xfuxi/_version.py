"""The xfuxi version (one place; the package and provenance attributes read it)."""

__version__ = "0.1.0"

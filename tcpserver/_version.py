"""The package version (single source for pyproject and BuildInfo)."""

__version__ = "0.1.0"

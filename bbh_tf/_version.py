"""The package version (read by setup.cfg and written into saved configs)."""

__version__ = "0.1.0"

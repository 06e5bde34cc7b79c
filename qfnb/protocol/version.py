"""qfnb's version: one place, importable from every layer (the daemon's runtime file carries it)."""

__version__ = "0.1.0"

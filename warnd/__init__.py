"""warnd: an early-warning daemon for drug trends."""

__version__ = "0.1.0"

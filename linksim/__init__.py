"""linksim: an end-to-end wireless image link simulator with a physical-layer focus."""

__version__ = "0.1.0"

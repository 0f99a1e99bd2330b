"""Herald scheduler: mock order lifecycle, campaign fan-out and the local schedule runner."""

__version__ = "0.1.0"

"""Herald recommendations service: catalog, activity, explainable recommendations."""

__version__ = "0.1.0"

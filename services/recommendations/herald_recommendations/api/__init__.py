"""HTTP routes of the recommendations service."""

"""Herald users service: accounts, JWT authentication, preferences, user events."""

__version__ = "0.1.0"

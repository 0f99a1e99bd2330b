"""Herald's GraphQL gateway: the single public API in front of the internal services."""

__version__ = "0.1.0"

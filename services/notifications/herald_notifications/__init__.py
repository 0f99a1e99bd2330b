"""Herald notifications service: stores users' notifications, decides per user's
preferences whether a requested notification is delivered now, later or not at all,
serves the inbox API and pushes new notifications to per-user Redis channels."""

__version__ = "0.1.0"

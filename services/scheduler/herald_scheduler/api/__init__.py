"""HTTP routes of the scheduler (internal API, see ARCHITECTURE.md)."""

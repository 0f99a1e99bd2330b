"""Herald shared library.

Everything two Herald components would otherwise write twice lives here: settings,
the event contracts, RabbitMQ messaging, the MongoDB outbox, Redis, metrics, logging,
HTTP app plumbing and JWT verification.
"""

__version__ = "0.1.0"

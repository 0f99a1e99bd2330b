"""Herald's Kubernetes operator (kopf): ``NotificationCampaign`` and ``Schedule``
resources become CronJobs and Jobs, with their status written back."""

__version__ = "0.1.0"

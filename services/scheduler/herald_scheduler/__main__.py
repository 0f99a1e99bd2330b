"""``python -m herald_scheduler``: serve the scheduler API (default 127.0.0.1:4004)."""

from __future__ import annotations

import uvicorn

from herald_scheduler.config import SchedulerSettings
from herald_scheduler.main import create_app


def main() -> None:
    settings = SchedulerSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()

"""Run the users service: ``python -m herald_users`` (127.0.0.1:4001 unless configured)."""

from __future__ import annotations

import uvicorn

from herald_users.config import UsersSettings
from herald_users.main import create_app


def main() -> None:
    settings = UsersSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # herald_common.logs configures logging
        proxy_headers=False,  # the client address comes from X-Forwarded-For explicitly
    )


if __name__ == "__main__":
    main()

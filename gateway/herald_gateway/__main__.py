"""``python -m herald_gateway`` / ``herald-gateway``: serve the gateway with uvicorn."""

from __future__ import annotations

import uvicorn

from herald_gateway.config import GatewaySettings
from herald_gateway.main import create_app


def main() -> None:
    settings = GatewaySettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()

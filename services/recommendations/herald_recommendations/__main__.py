"""``python -m herald_recommendations``: serve the API on the configured host and port."""

from __future__ import annotations

import uvicorn

from herald_recommendations.config import RecommendationsSettings
from herald_recommendations.main import create_app


def main() -> None:
    settings = RecommendationsSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()

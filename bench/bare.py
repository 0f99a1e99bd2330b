"""The ceiling of an HTTP service on this machine: a bare FastAPI app under uvicorn
with nothing behind it, answering a page shaped like the inbox query's answer.

    python -m bench.bare PORT
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI
from herald_common.app import NO_TELEMETRY

PAGE: dict[str, Any] = {
    "data": {
        "unreadCount": 7,
        "notifications": {
            "edges": [
                {
                    "node": {
                        "id": f"{i:08d}-0000-4000-8000-000000000000",
                        "type": "promotion",
                        "read": False,
                    }
                }
                for i in range(20)
            ]
        },
    }
}

# FastAPI's OpenTelemetry hooks off, as in every Herald service.
app = FastAPI(telemetry=NO_TELEMETRY)


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/graphql")
async def graphql(body: dict[str, Any]) -> dict[str, Any]:
    return PAGE


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)

"""The shared FastAPI conventions: health, readiness, metrics, typed errors."""

import httpx
from herald_common.app import create_app
from herald_common.errors import Conflict, RateLimited
from pydantic import BaseModel


class Thing(BaseModel):
    name: str
    size: int


def _app():
    app = create_app(service="demo", title="demo")

    @app.post("/things")
    async def make(thing: Thing) -> Thing:
        if thing.name == "taken":
            raise Conflict("name already taken", field="name")
        if thing.name == "slow-down":
            raise RateLimited("too many things", retry_after=7)
        if thing.name == "boom":
            raise RuntimeError("secret internals")
        return thing

    return app


async def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    )


async def test_health_ready_metrics() -> None:
    app = _app()
    ready = {"ok": True}

    async def check() -> bool:
        return ready["ok"]

    app.state.ready_checks["dep"] = check
    async with await _client(app) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        ready["ok"] = False
        r = await client.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"] == {"dep": False}
        await client.post("/things", json={"name": "a", "size": 1})
        text = (await client.get("/metrics")).text
        assert 'herald_http_request_duration_seconds_count{method="POST",route="/things"' in text


async def test_typed_errors() -> None:
    async with await _client(_app()) as client:
        r = await client.post("/things", json={"name": "a", "size": "big"})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "BAD_USER_INPUT"
        assert r.json()["error"]["field"] == "size"
        r = await client.post(
            "/things", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400
        r = await client.post("/things", json={"name": "taken", "size": 1})
        assert r.status_code == 409 and r.json()["error"] == {
            "code": "CONFLICT",
            "message": "name already taken",
            "field": "name",
        }
        r = await client.post("/things", json={"name": "slow-down", "size": 1})
        assert r.status_code == 429 and r.headers["retry-after"] == "7"
        r = await client.post("/things", json={"name": "boom", "size": 1})
        assert r.status_code == 500 and "secret" not in r.text
        assert (await client.get("/nope")).json()["error"]["code"] == "NOT_FOUND"


async def test_correlation_id_is_echoed_and_metrics_carry_route_and_status() -> None:
    async with await _client(_app()) as client:
        r = await client.post(
            "/things", json={"name": "taken", "size": 1}, headers={"x-request-id": "req-7"}
        )
        assert r.status_code == 409 and r.headers["x-correlation-id"] == "req-7"
        fresh = await client.post("/things", json={"name": "a", "size": 1})
        assert fresh.headers["x-correlation-id"] not in ("", "req-7")
        r = await client.get("/nowhere", headers={"x-correlation-id": "c-1"})
        assert r.status_code == 404 and r.headers["x-correlation-id"] == "c-1"
        await client.post("/things", json={"name": "boom", "size": 1})
        text = (await client.get("/metrics")).text
    for route, status in (("/things", "409"), ("/things", "200"), ("unmatched", "404")):
        assert f'route="{route}",service="demo",status="{status}"' in text, (route, status)
    assert 'route="/things",service="demo",status="500"' in text

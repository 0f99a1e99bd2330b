"""A consumer rebuilds every user's current preferences from the events alone.

The users service runs as a real server process (``python -m herald_users``); this test
process plays another service: a replica (``herald_common.replica``) in its own database
fed by its own queue. Then the same events are applied again, duplicated and shuffled,
to a fresh replica: the result must not change.
"""

import asyncio
import os
import random
import sys
from typing import Any

import httpx
import pymongo
import pytest
from herald_common import replica
from herald_common.db import connect_db, disconnect_db, run_db
from herald_common.events import Envelope
from herald_testing import eventually
from herald_testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PASSWORD = "correct-Horse-battery"


def _env(settings, port: int, signing_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    values = {
        "ENVIRONMENT": "test",
        "PORT": str(port),
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DB": settings.mongodb_db,
        "AMQP_URL": settings.amqp_url.get_secret_value(),
        "REDIS_URL": settings.redis_url,
        "EVENTS_EXCHANGE": settings.events_exchange,
        "DEAD_LETTER_EXCHANGE": settings.dead_letter_exchange,
        "PRIVATE_KEY_PEM": signing_key,
        "RATE_LIMIT_PREFIX": settings.rate_limit_prefix,
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        "ARGON2_PARALLELISM": "1",
        "LOG_JSON": "false",
    }
    env.update({f"HERALD_USERS_{k}": v for k, v in values.items()})
    return env


def _source_of_truth(settings) -> dict[str, Any]:
    """Live users straight from the users database: id -> (name, email, preferences)."""
    client: Any = pymongo.MongoClient(settings.mongodb_uri)
    try:
        docs = client[settings.mongodb_db]["users"].find({"deleted_at": None})
        return {d["_id"]: (d["name"], d["email"], d["preferences"]) for d in docs}
    finally:
        client.close()


def _replicated() -> dict[str, Any]:
    return {
        d["_id"]: (d["name"], d["email"], d["preferences"])
        for batch in replica.iter_users()
        for d in batch
    }


@pytest.fixture
async def users_server(users_settings, signing_key):
    """Start the users service as a server process (call it once consumers exist)."""
    procs: list[asyncio.subprocess.Process] = []
    clients: list[httpx.AsyncClient] = []

    async def start():
        settings = users_settings()
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "herald_users",
            env=_env(settings, port, signing_key),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        procs.append(proc)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        clients.append(client)

        async def ready() -> bool:
            if proc.returncode is not None:
                err = await proc.stderr.read() if proc.stderr else b""
                raise AssertionError(f"users service exited: {err.decode()[-2000:]}")
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout=60)
        return settings, client

    yield start
    for client in clients:
        await client.aclose()
    for proc in procs:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_replica_rebuilt_from_events_equals_the_users_database(
    users_server, make_settings, broker_for, unique
) -> None:
    replica_settings = make_settings(component="replica")
    seen: list[Envelope[Any]] = []
    applied = 0

    async def handle(event: Envelope[Any]) -> None:
        nonlocal applied
        await replica.handle_user_event(event)
        seen.append(event)
        applied += 1

    await run_db(connect_db, replica_settings)
    try:
        await run_db(replica.ensure_indexes)
        broker = await broker_for(replica_settings)
        await broker.consume(f"t{unique}.replica.users", ["user.*"], handle, prefetch=1)
        # The service starts after the consumer exists: even its first event (the
        # bootstrapped admin's registration) reaches the replica.
        settings, http = await users_server()

        # A realistic history for several users.
        async def register(i: int) -> dict[str, Any]:
            r = await http.post(
                "/v1/auth/register",
                json={"name": f"User {i}", "email": f"user{i}@example.com", "password": PASSWORD},
            )
            assert r.status_code == 201, r.text
            return r.json()

        people = [await register(i) for i in range(5)]
        zones = ["Europe/Berlin", "Asia/Tokyo", "America/Chicago", "UTC"]
        for n, person in enumerate(people):
            auth = {"authorization": f"Bearer {person['access_token']}"}
            for step in range(n + 1):
                body = {
                    "promotions": step % 2 == 0,
                    "timezone": zones[(n + step) % len(zones)],
                    "max_promotions_per_day": step,
                }
                r = await http.patch("/v1/users/me/preferences", json=body, headers=auth)
                assert r.status_code == 200, r.text
            if n % 2:
                await http.patch(
                    "/v1/users/me/preferences",
                    json={"quiet_hours": {"start": "21:00", "end": "06:00"}, "channels": ["push"]},
                    headers=auth,
                )
                await http.patch("/v1/users/me", json={"name": f"Renamed {n}"}, headers=auth)
        # Concurrent updates of one user still end in the same state on both sides.
        auth0 = {"authorization": f"Bearer {people[0]['access_token']}"}
        await asyncio.gather(
            *(
                http.patch(
                    "/v1/users/me/preferences", json={"max_promotions_per_day": c}, headers=auth0
                )
                for c in (7, 8, 9)
            )
        )
        # One account goes away; its address is registered again by someone new.
        doomed = {"authorization": f"Bearer {people[4]['access_token']}"}
        assert (await http.delete("/v1/users/me", headers=doomed)).status_code == 204
        newcomer = await register(4)

        truth = await run_db(_source_of_truth, settings)
        assert people[4]["user"]["id"] not in truth and newcomer["user"]["id"] in truth

        async def converged() -> bool:
            return await run_db(_replicated) == truth

        try:
            await eventually(converged, timeout=30)
        except AssertionError:
            got = await run_db(_replicated)
            diff = {
                k: (truth.get(k), got.get(k))
                for k in truth.keys() | got.keys()
                if truth.get(k) != got.get(k)
            }
            raise AssertionError(f"replica differs from the users database: {diff}") from None
        gone = await run_db(replica.get_user, people[4]["user"]["id"])
        assert gone is None
        prefs = await run_db(replica.get_preferences, people[3]["user"]["id"])
        assert (
            prefs is not None
            and prefs.quiet_hours is not None
            and prefs.channels == ["in_app", "push"]
        )

        # Redelivery: the same events once more, newest first. Nothing changes.
        total = applied
        for event in reversed(list(seen)):
            await broker.publish(event)
        await eventually(lambda: applied >= 2 * total, timeout=30)
        assert await run_db(_replicated) == truth
    finally:
        await run_db(disconnect_db)

    # Out of order and duplicated, into a fresh replica database: same result.
    fresh = make_settings(component="replica2")
    await run_db(connect_db, fresh)
    try:
        shuffled = list(seen) + random.sample(seen, k=len(seen) // 2)
        random.Random(7).shuffle(shuffled)
        for event in shuffled:
            await replica.handle_user_event(event)
        assert await run_db(_replicated) == truth
    finally:
        await run_db(disconnect_db)

"""MongoDB access: one database per service, through mongoengine.

mongoengine (pymongo) is synchronous; async code calls it through
``asyncio.to_thread`` (see :func:`run_db`) so the event loop never blocks on storage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import mongoengine
from pymongo.database import Database

from herald_common.settings import HeraldSettings

P = ParamSpec("P")
T = TypeVar("T")


def connect_db(settings: HeraldSettings, alias: str = "default") -> Database[Any]:
    """Connect mongoengine's ``alias`` to the service's own database and return it."""
    mongoengine.disconnect(alias=alias)
    mongoengine.connect(
        db=settings.mongodb_db,
        host=settings.mongodb_uri,
        alias=alias,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=5_000,
        connectTimeoutMS=5_000,
    )
    return mongoengine.get_db(alias)


def disconnect_db(alias: str = "default") -> None:
    mongoengine.disconnect(alias=alias)


def ping_db(alias: str = "default") -> bool:
    try:
        mongoengine.get_db(alias).command("ping")
    except Exception:  # noqa: BLE001 - readiness reports any failure as "not ready"
        return False
    return True


async def run_db(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking storage call in a worker thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)

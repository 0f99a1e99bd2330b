"""Command line: ``herald-notifications serve | sweep | digest``.

``serve`` runs the HTTP service with its consumers and periodic sweeps;
``sweep`` releases due deferred requests and applies retention once (e.g. from a
Kubernetes CronJob when the in-process sweeps are disabled with
``HERALD_NOTIFICATIONS_RUN_SWEEPS=false``);
``digest`` sends every digest whose slot has come, once (the ``digest`` Schedule task:
a CronJob in Kubernetes, the local runner otherwise). It prints
``{"slots", "sent", "empty", "moved_by_quiet_hours"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence

from herald_notifications.config import NotificationsSettings


def _serve(settings: NotificationsSettings) -> None:
    import uvicorn

    from herald_notifications.main import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


async def _sweep(settings: NotificationsSettings) -> dict[str, object]:
    from herald_common.runtime import ServiceRuntime

    from herald_notifications.models import Notification
    from herald_notifications.service import NotificationService

    runtime = ServiceRuntime(settings, documents=[Notification], verify_tokens=False)
    await runtime.start()
    try:
        service = NotificationService(
            settings, redis=runtime.redis, outbox_written=runtime.outbox_written
        )
        released = await service.release_due()
        purged = await service.purge()
    finally:
        await runtime.stop()  # publishes what the sweep staged
    return {"re_evaluated": released.handled, "delivered": len(released.created), "purged": purged}


async def _digest(settings: NotificationsSettings, limit: int) -> dict[str, int]:
    from herald_common.runtime import ServiceRuntime

    from herald_notifications.models import Notification, ensure_indexes
    from herald_notifications.service import NotificationService

    runtime = ServiceRuntime(settings, documents=[Notification], verify_tokens=False)
    await runtime.start()
    try:
        from herald_common.db import run_db

        await run_db(ensure_indexes)
        service = NotificationService(
            settings,
            broker=runtime.broker,
            redis=runtime.redis,
            outbox_written=runtime.outbox_written,
        )
        run = await service.send_digests(limit=limit)
    finally:
        await runtime.stop()
    return run.summary()


def build_parser() -> argparse.ArgumentParser:
    """The command line (the operator's tests parse its pod commands with it)."""
    parser = argparse.ArgumentParser(prog="herald-notifications", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP service (default)")
    sub.add_parser("sweep", help="release due deferred requests and purge old ones, once")
    digest = sub.add_parser("digest", help="send the digests whose slot has come, once")
    digest.add_argument("--limit", type=int, default=500, help="at most this many slots")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = NotificationsSettings()
    if args.command == "digest":
        print(json.dumps(asyncio.run(_digest(settings, args.limit))))
    elif args.command == "sweep":
        print(json.dumps(asyncio.run(_sweep(settings))))
    else:
        _serve(settings)


if __name__ == "__main__":
    main()

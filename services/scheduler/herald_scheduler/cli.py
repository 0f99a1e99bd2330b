"""``herald-scheduler``: the commands CronJobs, Jobs and people run.

    herald-scheduler serve                                  # the HTTP API (port 4004)
    herald-scheduler fire-campaign --file campaign.yaml [--run-id ID] [--dry-run]
    herald-scheduler fire-campaign --name spring-sale [--dry-run]
    herald-scheduler fire-campaign --resource-json '{"kind": "NotificationCampaign", ...}' \
        [--preview] [--wait-seconds 600] [--termination-log /dev/termination-log]  # pods
    herald-scheduler sweep-orders [--batch-size N] [--limit N]
    herald-scheduler run-local --dir examples/campaigns --dir examples/schedules
    herald-scheduler seed-orders --users u1,u2 | --all-users [--per-user 2] [--seed 7]
    herald-scheduler validate examples/

Exit codes: 0 done, 1 failed (infrastructure unreachable, task error), 2 invalid input
or configuration (bad file, unknown campaign, bad settings). Connection settings come
from the usual environment (``HERALD_SCHEDULER_*``, ``HERALD_*``).

Long module: every command the operator's pods and the local runner run, with the one
parser and the exit-code contract they share; each command only translates its
arguments into calls of :mod:`herald_scheduler.domain`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from herald_common import replica
from herald_common.clock import utcnow
from herald_common.db import run_db
from herald_common.errors import BadUserInput, NotFound
from herald_common.logs import configure_logging
from herald_common.resources import (
    CampaignSpec,
    NotificationCampaign,
    ResourceError,
    Schedule,
    load_directories,
    load_file,
    load_text,
    scheduled_run_id,
)
from herald_common.resources.tasks import task_command
from herald_common.runtime import ServiceRuntime
from pydantic import ValidationError

from herald_scheduler.config import SchedulerSettings
from herald_scheduler.domain import Campaigns, Orders
from herald_scheduler.interests import known_products
from herald_scheduler.models import OrderTransition, ensure_indexes
from herald_scheduler.orders import seed_orders
from herald_scheduler.runner import Firing, LocalRunner
from herald_scheduler.tasks import TaskOutcome, TaskWorker, run_command

log = logging.getLogger("herald_scheduler.cli")

OK, FAILED, INVALID = 0, 1, 2


class InvalidInput(Exception):
    """Bad input or configuration: exit code 2."""


def _runtime(settings: SchedulerSettings, *, db: bool = True) -> ServiceRuntime:
    return ServiceRuntime(
        settings,
        documents=[OrderTransition] if db else [],
        use_db=db,
        use_redis=False,
        verify_tokens=False,
        configure_logs=False,
    )


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("the time needs a UTC offset, e.g. 2030-01-01T09:00Z")
    return parsed


def _print(data: dict[str, Any]) -> None:
    print(json.dumps(data, default=str))


# --- fire-campaign ---------------------------------------------------------------------------


# Kubernetes keeps at most 4096 bytes of a container's termination message.
TERMINATION_MESSAGE_MAX = 4000
SAMPLE_TEXT_MAX = 160


def termination_summary(result: dict[str, Any], limit: int = TERMINATION_MESSAGE_MAX) -> str:
    """``result`` as compact JSON that fits a termination message: sample texts are
    shortened, then samples dropped, until it fits."""
    summary = dict(result)
    samples = [
        {
            "userId": s["user_id"],
            "title": str(s["content"].get("title", ""))[:SAMPLE_TEXT_MAX],
            "body": str(s["content"].get("body", ""))[:SAMPLE_TEXT_MAX],
        }
        for s in summary.pop("samples", None) or []
    ]
    while True:
        text = json.dumps({**summary, **({"samples": samples} if samples else {})})
        if len(text.encode()) <= limit or not samples:
            return text
        samples.pop()


def _load_one(text: str, source: str) -> NotificationCampaign:
    campaigns = [r for r in load_text(text, source) if isinstance(r, NotificationCampaign)]
    if len(campaigns) != 1:
        raise InvalidInput(f"{source}: expected exactly one NotificationCampaign")
    return campaigns[0]


async def cmd_fire_campaign(args: argparse.Namespace, settings: SchedulerSettings) -> int:
    """Fire one campaign (from a file, an inline resource, or a stored definition)."""
    now = args.at or utcnow()
    campaign: NotificationCampaign | None = None
    if args.file:
        resources = load_file(args.file)
        campaigns = [r for r in resources if isinstance(r, NotificationCampaign)]
        if len(campaigns) != 1:
            raise InvalidInput(f"{args.file}: expected exactly one NotificationCampaign")
        campaign = campaigns[0]
    elif args.resource_json:
        campaign = _load_one(args.resource_json, "--resource-json")
    if campaign is not None and campaign.spec.suspend and not args.force:
        log.warning("campaign %s is suspended; not firing (use --force)", campaign.name)
        _finish(args, {"campaign": campaign.name, "fired": False, "reason": "suspended"})
        return OK
    runtime = _runtime(settings, db=campaign is None or args.preview or args.wait_seconds > 0)
    await runtime.start()
    try:
        domain = Campaigns(settings, runtime.broker)
        if campaign is not None:
            name, namespace, spec = campaign.name, campaign.namespace, campaign.spec
        else:
            name = args.name
            namespace, spec = await domain.definition(name)
        result = await _fire(args, domain, name, namespace, spec, now)
    except (BadUserInput, NotFound) as exc:
        raise InvalidInput(f"campaign {args.name or (campaign and campaign.name)}: {exc}") from exc
    finally:
        await runtime.stop()
    _finish(args, result)
    # A run the fan-out recorded as failed fails the command (and so the Kubernetes Job).
    return FAILED if result.get("status") == "failed" else OK


async def _fire(
    args: argparse.Namespace,
    domain: Campaigns,
    name: str,
    namespace: str,
    spec: CampaignSpec,
    now: datetime,
) -> dict[str, Any]:
    # --preview evaluates a dry run here (audience and rendered samples, nothing sent)
    # so that the result can be reported: the operator copies it into the status.
    firing = await domain.fire(
        name,
        namespace,
        spec,
        run_id=args.run_id or scheduled_run_id(name, spec, now),
        dry_run=True if args.dry_run else None,
        evaluate=args.preview,
        now=now,
    )
    fired, run = firing.fired, firing.run
    if run is not None and not firing.published:
        return {
            "campaign": name,
            "run_id": fired.run_id,
            "dry_run": True,
            "fired": False,
            "audience_size": run.audience_size,
            "suppressed": run.suppressed,
            "samples": list(run.samples or []),
        }
    result: dict[str, Any] = {
        "campaign": fired.campaign,
        "run_id": fired.run_id,
        "dry_run": fired.dry_run,
        "fired": True,
    }
    if args.wait_seconds > 0:
        run = await domain.wait_for(fired.campaign, fired.run_id, args.wait_seconds)
        result["status"] = run.status if run is not None else "pending"
        if run is not None:
            result.update(audience_size=run.audience_size, sent=run.sent, suppressed=run.suppressed)
            if run.error:
                result["error"] = run.error
    return result


def _finish(args: argparse.Namespace, result: dict[str, Any]) -> None:
    _print(result)
    if args.termination_log:
        with open(args.termination_log, "w") as f:
            f.write(termination_summary(result))


# --- sweep-orders ------------------------------------------------------------------------------


async def cmd_sweep_orders(args: argparse.Namespace, settings: SchedulerSettings) -> int:
    runtime = _runtime(settings)
    await runtime.start()
    try:
        await run_db(ensure_indexes)
        result = await Orders(settings).sweep(
            args.now, batch_size=args.batch_size, limit=args.limit
        )
    finally:
        # Stopping relays every staged event (confirmed) before the process exits.
        await runtime.stop()
    _print(result.to_dict())
    return OK


# --- seed-orders ---------------------------------------------------------------------------------


def _replica_user_ids() -> list[str]:
    return [u["_id"] for batch in replica.iter_users() for u in batch]


async def cmd_seed_orders(args: argparse.Namespace, settings: SchedulerSettings) -> int:
    runtime = _runtime(settings)
    await runtime.start()
    try:
        await run_db(ensure_indexes)
        if args.all_users:
            users = await run_db(_replica_user_ids)
        else:
            users = [u.strip() for u in args.users.split(",") if u.strip()]
        if not users:
            raise InvalidInput("no users to seed orders for")
        products = await run_db(known_products)
        placed = await run_db(
            lambda: seed_orders(
                users,
                per_user=args.per_user,
                seed=args.seed,
                now=utcnow(),
                settings=settings,
                products=products,
            )
        )
        runtime.outbox_written()
    finally:
        await runtime.stop()
    _print({"users": len(users), "orders_placed": placed})
    return OK


# --- run-local -------------------------------------------------------------------------------------


class RuntimeActions:
    """What the local runner does, with a connected runtime (DB + broker)."""

    def __init__(self, settings: SchedulerSettings, runtime: ServiceRuntime) -> None:
        self.settings = settings
        self.campaigns = Campaigns(settings, runtime.broker)
        self.orders = Orders(settings, outbox_written=runtime.outbox_written)
        self._stored: dict[str, str] = {}
        # Task commands run in one warm worker process, not a new interpreter per run.
        self.worker = TaskWorker()

    async def campaigns_loaded(self, campaigns: Sequence[NotificationCampaign]) -> None:
        """Remember the file definitions so an admin can fire them by name."""
        for c in campaigns:
            fingerprint = c.model_dump_json()
            if self._stored.get(c.name) != fingerprint:
                await self.campaigns.remember(c)
                self._stored[c.name] = fingerprint

    async def fire_campaign(self, campaign: NotificationCampaign, firing: Firing) -> None:
        await self.campaigns.fire(
            campaign.name, campaign.namespace, campaign.spec, run_id=firing.run_id, evaluate=False
        )

    async def run_task(self, schedule: Schedule, firing: Firing) -> TaskOutcome:
        spec = schedule.spec
        if spec.task == "order-sweep":
            result = await self.orders.sweep(
                batch_size=spec.parameters.get("batchSize"), limit=spec.parameters.get("limit")
            )
            return TaskOutcome("succeeded", json.dumps(result.to_dict()))
        return await run_command(
            task_command(spec.task, spec.parameters),
            timeout=self.settings.task_timeout_seconds,
            worker=self.worker,
        )


async def cmd_run_local(args: argparse.Namespace, settings: SchedulerSettings) -> int:
    resources, errors = load_directories(args.dir)
    for err in errors:
        log.error("invalid resource file: %s", err)
    if not resources and errors:
        raise InvalidInput("no valid resource file found")
    runtime = _runtime(settings)
    await runtime.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_db(ensure_indexes)
        actions = RuntimeActions(settings, runtime)
        runner = LocalRunner(args.dir, actions, reload_seconds=settings.runner_reload_seconds)
        log.info("local runner started", extra={"dirs": [str(d) for d in args.dir]})
        try:
            await runner.run_forever(stop)
        finally:
            await actions.worker.close()
    finally:
        await runtime.stop()
    return OK


# --- validate / serve -----------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    resources, errors = load_directories(args.paths)
    for res in resources:
        print(f"ok      {res.source}: {res.ref}")
    for err in errors:
        print(f"invalid {err}", file=sys.stderr)
    return INVALID if errors or not resources else OK


def cmd_serve(settings: SchedulerSettings) -> int:
    import uvicorn

    from herald_scheduler.main import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)
    return OK


# --- entry point -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald-scheduler", description="Herald scheduler commands."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", help="serve the scheduler HTTP API")

    fire = sub.add_parser("fire-campaign", help="publish campaign.fired for one campaign")
    which = fire.add_mutually_exclusive_group(required=True)
    which.add_argument("--file", help="a NotificationCampaign YAML file")
    which.add_argument("--name", help="a campaign the scheduler already knows")
    which.add_argument(
        "--resource-json", help="the NotificationCampaign itself, as JSON (CronJob pods)"
    )
    fire.add_argument("--run-id", help="default: the campaign name + the scheduled minute")
    fire.add_argument("--dry-run", action="store_true", help="audience and samples only")
    fire.add_argument("--force", action="store_true", help="fire even when suspended")
    fire.add_argument(
        "--preview",
        action="store_true",
        help="evaluate a dry run here (needs the database) and report audience and samples",
    )
    fire.add_argument(
        "--wait-seconds",
        type=float,
        default=0.0,
        help="wait up to this long for the fan-out to finish and report its counts",
    )
    fire.add_argument("--termination-log", help="also write the result (compact JSON) to this file")
    fire.add_argument("--at", type=_parse_time, help=argparse.SUPPRESS)

    sw = sub.add_parser("sweep-orders", help="advance every order that is due")
    sw.add_argument("--batch-size", type=int, default=None)
    sw.add_argument("--limit", type=int, default=None, help="at most this many orders")
    sw.add_argument("--now", type=_parse_time, help=argparse.SUPPRESS)

    local = sub.add_parser("run-local", help="fire campaign and schedule files without Kubernetes")
    local.add_argument(
        "--dir",
        action="append",
        required=True,
        help="folder (or file) of YAML resources; repeatable",
    )

    seed = sub.add_parser("seed-orders", help="place mock orders")
    who = seed.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", help="comma-separated user ids")
    who.add_argument("--all-users", action="store_true", help="every user in the replica")
    seed.add_argument("--per-user", type=int, default=2)
    seed.add_argument("--seed", type=int, default=7)

    val = sub.add_parser("validate", help="check resource files against the CRDs")
    val.add_argument("paths", nargs="+")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "validate":
        return cmd_validate(args)
    try:
        settings = SchedulerSettings()
    except ValidationError as exc:
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return INVALID
    configure_logging(f"{settings.service_name}-cli", settings.log_level, settings.log_json)
    if args.command == "serve":
        return cmd_serve(settings)
    commands = {
        "fire-campaign": cmd_fire_campaign,
        "sweep-orders": cmd_sweep_orders,
        "run-local": cmd_run_local,
        "seed-orders": cmd_seed_orders,
    }
    for flag in ("per_user", "batch_size", "limit"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            print(f"error: --{flag.replace('_', '-')} must be at least 1", file=sys.stderr)
            return INVALID
    try:
        return asyncio.run(commands[args.command](args, settings))
    except (ResourceError, InvalidInput) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return INVALID
    except KeyboardInterrupt:
        return FAILED
    except Exception as exc:
        log.debug("command failed", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return FAILED


if __name__ == "__main__":
    sys.exit(main())

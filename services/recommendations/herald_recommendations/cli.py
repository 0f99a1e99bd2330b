"""``herald-recommendations``: serve, generate mock data, evaluate, run the batch job.

    herald-recommendations generate --seed 42 --users 200 --products 2000 \\
        --categories 24 --events 50000 [--direct | --publish]
    herald-recommendations evaluate [--source db | --source generated ...] [--json]
    herald-recommendations batch [--all | --changed-since-last-run] [--notify | --no-notify]
    herald-recommendations serve

Settings (database, broker...) come from the ``HERALD_RECOMMENDATIONS_*`` /
``HERALD_*`` environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from herald_common.db import connect_db, disconnect_db, ping_db
from herald_common.events import Activity, ActivityRecorded, make_event
from herald_common.logs import configure_logging
from herald_common.messaging import Broker
from pymongo.errors import PyMongoError

from herald_recommendations import activity_store, storage
from herald_recommendations.batch import EXIT_CONFIG, run_batch
from herald_recommendations.catalog import MAX_CATEGORIES, generate_catalog
from herald_recommendations.config import RecommendationsSettings
from herald_recommendations.evaluation import EvaluationReport, evaluate
from herald_recommendations.generator import ActivityGenerator

log = logging.getLogger("herald_recommendations.cli")
GENERATOR_NAMESPACE = uuid.UUID("0b5f0c8e-8d0a-4a53-9a43-6f1f3e2b7a10")
PUBLISH_BATCH = 1000
DIRECT_CHUNK = 5000


def _progress(total: int, unit: str, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, unit=unit, desc=desc, unit_scale=True, dynamic_ncols=True, disable=None
    )


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC).replace(second=0, microsecond=0)
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _connect(settings: RecommendationsSettings) -> bool:
    connect_db(settings)
    if not ping_db():
        print(f"error: cannot reach MongoDB at {settings.mongodb_uri}", file=sys.stderr)
        return False
    return True


# --- generate --------------------------------------------------------------------------------


def generate(args: argparse.Namespace, settings: RecommendationsSettings) -> int:
    """Seed the catalog and write (``--direct``) or publish (``--publish``) activity."""
    if not _connect(settings):
        return EXIT_CONFIG
    try:
        storage.ensure_indexes()
        replaced = storage.seed_catalog(args.seed, args.products, args.categories, replace=True)
        catalog = generate_catalog(args.seed, args.products, args.categories)
        print(
            f"catalog: {len(catalog)} products in {args.categories} categories"
            f"{' (replaced)' if replaced else ' (unchanged)'}"
        )
        generator = ActivityGenerator(
            catalog,
            seed=args.seed,
            users=args.users,
            events=args.events,
            now=_now(args.now).timestamp(),
        )
        by_id = {p.id: p for p in catalog}
        if args.publish:
            sent = asyncio.run(_publish(generator, by_id, args, settings))
            print(f"published {sent} activities in batches of up to {PUBLISH_BATCH}")
        else:
            written = _direct(generator, args, settings)
            print(f"wrote {written} new activities for {args.users} users")
    finally:
        disconnect_db()
    return 0


def _direct(
    generator: ActivityGenerator, args: argparse.Namespace, settings: RecommendationsSettings
) -> int:
    written = 0
    docs: list[dict[str, Any]] = []
    now = datetime.now(UTC)

    def flush() -> None:
        nonlocal written, docs
        written += activity_store.insert_activities(docs)
        by_user: dict[str, list[dict[str, Any]]] = {}
        for doc in docs:
            by_user.setdefault(doc["user_id"], []).append(activity_store.activity_entry(doc))
        activity_store.record_activity(by_user, now, settings.max_user_activities)
        docs = []

    with _progress(args.events, "ev", "activity") as bar:
        for user_id, interactions in generator.stream():
            for n, item in enumerate(interactions):
                at = datetime.fromtimestamp(item.at, UTC)
                docs.append(
                    {
                        "_id": f"gen-{args.seed}-{user_id}-{n}",
                        "user_id": user_id,
                        "kind": item.kind,
                        "product_id": item.product_id,
                        "occurred_at": at,
                        "session_id": item.session_id,
                        "quantity": 1,
                        "ingested_at": now,
                    }
                )
            bar.update(len(interactions))
            if len(docs) >= DIRECT_CHUNK:
                flush()
        flush()
    return written


async def _publish(
    generator: ActivityGenerator,
    by_id: dict[str, Any],
    args: argparse.Namespace,
    settings: RecommendationsSettings,
) -> int:
    broker = Broker(settings, source="recommendations-generator")
    await broker.connect(timeout=15)
    sent = 0
    chunk: list[Activity] = []
    chunk_no = 0

    async def flush() -> None:
        nonlocal sent, chunk, chunk_no
        if not chunk:
            return
        event = make_event(
            ActivityRecorded(activities=chunk),
            source="recommendations-generator",
        )
        # A deterministic event id: publishing the same data again is a no-op downstream.
        key = f"{args.seed}:{args.users}:{args.products}:{args.categories}:{args.events}:{chunk_no}"
        event.id = uuid.uuid5(GENERATOR_NAMESPACE, key)
        await broker.publish(event)
        sent += len(chunk)
        chunk, chunk_no = [], chunk_no + 1

    try:
        with _progress(args.events, "ev", "publish") as bar:
            for user_id, interactions in generator.stream():
                for item in interactions:
                    product = by_id[item.product_id]
                    chunk.append(
                        Activity(
                            user_id=user_id,
                            kind=item.kind,
                            product_id=item.product_id,
                            occurred_at=datetime.fromtimestamp(item.at, UTC),
                            session_id=item.session_id,
                            product_name=product.name,
                            category=product.category,
                            price=product.price,
                        )
                    )
                    if len(chunk) >= PUBLISH_BATCH:
                        await flush()
                bar.update(len(interactions))
            await flush()
    finally:
        await broker.close()
    return sent


# --- evaluate --------------------------------------------------------------------------------


def run_evaluation(args: argparse.Namespace, settings: RecommendationsSettings) -> int:
    """Hold out last purchases; compare with the popularity baseline."""
    params = settings
    if args.source == "generated":
        catalog_list = generate_catalog(args.seed, args.products, args.categories)
        catalog = {p.id: p for p in catalog_list}
        now = _now(args.now).timestamp()
        generator = ActivityGenerator(
            catalog_list, seed=args.seed, users=args.users, events=args.events, now=now
        )
        total = args.users

        def stream() -> Any:
            return generator.stream()
    else:
        if not _connect(settings):
            return EXIT_CONFIG
        catalog = storage.load_catalog()
        now = datetime.now(UTC).timestamp()
        total = storage.active_user_count()

        def stream() -> Any:
            return storage.iter_user_interactions(settings.batch_page_size)

    with _progress(2 * total, "user", "evaluate") as bar:
        report = evaluate(stream, catalog, now, k=args.k, params=params, progress=bar.update)
    _print_report(report, as_json=args.json)
    return 0 if report.beats_baseline or not args.require_beat else 1


def _print_report(report: EvaluationReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    k = report.k
    table = Table(
        title=f"Offline evaluation: {report.users_evaluated} users, last purchases held out"
    )
    for column in ("", f"precision@{k}", f"recall@{k}", "coverage"):
        table.add_column(column)
    for name, scores in (("model", report.model), ("popularity baseline", report.baseline)):
        table.add_row(
            name, f"{scores.precision:.4f}", f"{scores.recall:.4f}", f"{scores.coverage:.4f}"
        )
    console = Console()
    console.print(table)
    console.print("beats baseline" if report.beats_baseline else "does NOT beat the baseline")


# --- batch -------------------------------------------------------------------------------------


def batch(args: argparse.Namespace, settings: RecommendationsSettings) -> int:
    """Recompute, store and announce recommendations (the Kubernetes Job command)."""
    result = asyncio.run(
        run_batch(
            settings,
            mode="changed" if args.changed else "all",
            notify=args.notify,
            batch_id=args.batch_id,
        )
    )
    summary = {k: v for k, v in result.as_dict().items() if v not in (None, [])}
    print(json.dumps(summary, default=str))
    return result.exit_code


def serve(_: argparse.Namespace, settings: RecommendationsSettings) -> int:
    import uvicorn

    from herald_recommendations.main import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)
    return 0


# --- parser -------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _categories(text: str) -> int:
    value = _positive(text)
    if value > MAX_CATEGORIES:
        raise argparse.ArgumentTypeError(f"at most {MAX_CATEGORIES}")
    return value


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--users", type=_positive, default=200)
    parser.add_argument("--products", type=_positive, default=2000)
    parser.add_argument("--categories", type=_categories, default=24)
    parser.add_argument("--events", type=_positive, default=50_000)
    parser.add_argument("--now", help="ISO time the 60-day window ends at (default: now)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald-recommendations", description="Herald recommendations service tools"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="seed the catalog and generate mock activity")
    _data_args(gen)
    target = gen.add_mutually_exclusive_group()
    target.add_argument(
        "--direct", action="store_true", help="bulk-write into the service database (default)"
    )
    target.add_argument(
        "--publish", action="store_true", help="publish activity.recorded batches through RabbitMQ"
    )
    gen.set_defaults(func=generate)

    ev = sub.add_parser("evaluate", help="offline evaluation against a popularity baseline")
    ev.add_argument("--source", choices=("db", "generated"), default="db")
    _data_args(ev)
    ev.add_argument("--k", type=_positive, default=10)
    ev.add_argument("--json", action="store_true")
    ev.add_argument(
        "--require-beat", action="store_true", help="exit 1 unless the model beats the baseline"
    )
    ev.set_defaults(func=run_evaluation)

    b = sub.add_parser("batch", help="recompute recommendations and request notifications")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--all", action="store_true", help="every user (default)")
    mode.add_argument("--changed-since-last-run", dest="changed", action="store_true")
    b.add_argument("--notify", action=argparse.BooleanOptionalAction, default=True)
    b.add_argument("--batch-id", help="default: derived from the data watermark")
    b.set_defaults(func=batch)

    s = sub.add_parser("serve", help="run the HTTP service")
    s.set_defaults(func=serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = RecommendationsSettings()
    except ValueError as exc:
        print(f"error: configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    try:
        return int(args.func(args, settings))
    except (ConnectionError, OSError, PyMongoError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())

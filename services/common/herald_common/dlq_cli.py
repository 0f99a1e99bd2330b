"""``herald-dlq``: inspect and replay dead-letter queues from a shell.

    herald-dlq show notifications.requests [--limit 20]
    herald-dlq replay notifications.requests [--limit 100]

Connection settings come from the usual ``HERALD_AMQP_URL`` environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from herald_common.messaging import Broker
from herald_common.settings import HeraldSettings


async def _main(args: argparse.Namespace) -> int:
    broker = Broker(HeraldSettings(), source="herald-dlq")
    await broker.connect(timeout=10)
    try:
        if args.command == "show":
            depth = await broker.queue_depth(f"{args.queue}.dlq")
            letters = await broker.dead_letters(args.queue, limit=args.limit)
            print(
                json.dumps(
                    {"queue": args.queue, "count": depth, "messages": [asdict(m) for m in letters]},
                    indent=2,
                    default=str,
                )
            )
        else:
            replayed = await broker.replay_dead_letters(args.queue, limit=args.limit)
            print(f"replayed {replayed} message(s) into {args.queue}")
    finally:
        await broker.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="herald-dlq", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("show", "replay"):
        cmd = sub.add_parser(name)
        cmd.add_argument("queue", help="consumer queue name, e.g. notifications.requests")
        cmd.add_argument("--limit", type=int, default=20 if name == "show" else 100)
    try:
        return asyncio.run(_main(parser.parse_args(argv)))
    except (ConnectionError, OSError) as exc:
        print(f"error: cannot reach the broker: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

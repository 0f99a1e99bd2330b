"""Every example operation in examples/graphql is valid against the schema and is in
the Postman collection."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from herald_gateway.engine import get_engine, parse

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "graphql"
FILES = sorted(EXAMPLES.glob("*.graphql"))


def test_examples_exist_for_every_root_field() -> None:
    text = "\n".join(p.read_text() for p in FILES)
    for field in (
        "me", "notifications(", "unreadCount", "notification(", "recommendations(", "orders(",
        "user(", "campaigns(", "deadLetters(", "register(", "login(", "refreshToken(", "logout",
        "updatePreferences(", "markNotificationRead(", "markAllNotificationsRead",
        "trackActivity(", "fireCampaign(", "replayDeadLetters(", "notificationAdded",
        "unseenCount", "markNotificationsSeen(", "markNotificationsRead(",
        "archiveNotification(", "unarchiveNotification(", "archiveAllRead",
        "archived: true", "snoozeNotification(", "deleteNotification(", "inboxChanged",
        "digest {",
    ):  # fmt: skip
        assert field in text, field


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
async def test_example_is_valid(path: Path) -> None:
    text = await asyncio.to_thread(path.read_text)
    engine = await get_engine()
    _, errors = parse(engine, text)
    assert not errors, [e.message for e in errors]
    for line in text.splitlines():
        if line.startswith("# variables: "):
            json.loads(line.removeprefix("# variables: "))


def test_postman_collection_carries_every_example() -> None:
    collection = json.loads((EXAMPLES / "herald.postman_collection.json").read_text())
    queries = {i["name"]: i["request"]["body"]["graphql"]["query"] for i in collection["item"]}
    for path in FILES:
        assert queries.get(path.stem) == path.read_text(), path.name

"""The batch path builds stored notifications as plain dicts: they must be exactly what
the mongoengine document gives (same fields, values and order), whatever fields the
document gains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from herald_common.events import NotificationRequested
from herald_notifications.builders import build_notification, new_notification_doc


@pytest.mark.parametrize(
    ("collapse_key", "replaced_id", "content"),
    [
        (None, None, {"title": "Flash sale", "body": "20% off", "data": {"n": [1, 2]}}),
        ("order-7", "n-older", "plain text"),
    ],
)
def test_raw_document_equals_the_mongoengine_document(collapse_key, replaced_id, content) -> None:
    now = datetime(2026, 3, 10, 23, 59, 59, 999_999, tzinfo=UTC)
    request = NotificationRequested(
        idempotency_key="k-1",
        user_id="ann",
        type="order_update" if collapse_key else "promotion",
        content=content,
        collapse_key=collapse_key,
        source="scheduler",
        requested_at=now - timedelta(seconds=3),
    )
    kwargs = {"source": "notifications", "notification_id": "n-1", "replaced_id": replaced_id}
    expected = build_notification(request, now, **kwargs).to_mongo().to_dict()
    raw = new_notification_doc(request, now, **kwargs)
    assert list(raw) == list(expected)
    assert raw == expected
    # mutable defaults are not shared between documents
    other = new_notification_doc(request, now, **kwargs)
    for key, value in raw.items():
        if isinstance(value, list | dict) and value == []:
            assert other[key] is not value

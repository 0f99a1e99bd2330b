"""Property tests (hypothesis) of the inbox cursors: any stored position round-trips,
and any string a client invents is refused as BAD_USER_INPUT on ``after``."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from herald_common.errors import BadUserInput
from herald_notifications.builders import ms
from herald_notifications.views import decode_cursor, encode_cursor
from hypothesis import given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=300, deadline=None)
INSTANTS = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@FAST
@given(INSTANTS, st.text(min_size=1, max_size=40))
def test_cursor_round_trip(sent_at: datetime, doc_id: str) -> None:
    cursor = encode_cursor({"sent_at": sent_at, "_id": doc_id})
    assert decode_cursor(cursor) == (ms(sent_at), doc_id)
    assert "=" not in cursor and cursor.isascii()


def _typed_or_valid(cursor: str) -> None:
    try:
        when, doc_id = decode_cursor(cursor)
    except BadUserInput as exc:
        assert exc.field == "after"
        assert exc.message == "not a cursor returned by this API"  # never echoes input
        return
    assert when.tzinfo is not None and isinstance(doc_id, str)


@FAST
@given(st.text(max_size=80))
def test_any_text_is_a_cursor_or_bad_user_input(cursor: str) -> None:
    _typed_or_valid(cursor)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)


@FAST
@given(JSONISH)
def test_well_encoded_garbage_is_bad_user_input(value) -> None:
    """Valid base64 of any JSON (not just of a pair of date and id)."""
    raw = base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    _typed_or_valid(raw)

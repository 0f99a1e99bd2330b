"""The API client's rate limit and the run-now bookkeeping (no API server needed)."""

from __future__ import annotations

from herald_operator.kube import TokenBucket
from herald_operator.runs import annotation_written_at


def test_token_bucket_spends_its_burst_then_paces_at_qps() -> None:
    now = [0.0]
    bucket = TokenBucket(qps=10, burst=3, clock=lambda: now[0])
    assert [bucket.delay() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert round(bucket.delay(), 3) == 0.1
    assert round(bucket.delay(), 3) == 0.2
    now[0] = 10.0  # refilled, never beyond the burst
    assert [bucket.delay() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.delay() > 0


def test_the_time_an_annotation_was_written_comes_from_managed_fields() -> None:
    body = {
        "metadata": {
            "managedFields": [
                {"manager": "kopf", "time": "2030-01-01T00:00:00Z", "fieldsV1": {"f:status": {}}},
                {
                    "manager": "kubectl-annotate",
                    "time": "2030-01-01T00:00:07Z",
                    "fieldsV1": {"f:metadata": {"f:annotations": {"f:herald.io/run-now": {}}}},
                },
            ]
        }
    }
    assert annotation_written_at(body, "herald.io/run-now") == "2030-01-01T00:00:07Z"
    assert annotation_written_at(body, "herald.io/other") == ""

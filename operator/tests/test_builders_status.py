"""Status: conditions and the outcome of the last Job."""

from __future__ import annotations

from datetime import UTC, datetime

from herald_operator.builders import status as st

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2030, 1, 1, 9, 5, tzinfo=UTC)


def _by_type(conditions: list[dict]) -> dict[str, dict]:
    return {c["type"]: c for c in conditions}


def test_reconciled_then_failed_then_fixed_keeps_transition_times_honest() -> None:
    ok = st.reconciled(
        None,
        generation=1,
        suspended=False,
        now=T0,
        next_run=T1,
        children={"cronJobName": "campaign-x"},
        message="fine",
    )
    assert ok["observedGeneration"] == 1 and ok["nextRunTime"] == "2030-01-01T09:05:00Z"
    assert ok["cronJobName"] == "campaign-x"
    conds = _by_type(ok["conditions"])
    assert [c["type"] for c in ok["conditions"]] == ["Ready", "Suspended", "Failed"]
    assert conds["Ready"]["status"] == "True" and conds["Suspended"]["status"] == "False"
    assert conds["Ready"]["lastTransitionTime"] == "2030-01-01T09:00:00Z"

    bad = st.failed(ok, generation=2, reason="ImageNotSet", message="no image", now=T1)
    conds = _by_type(bad["conditions"])
    assert conds["Failed"]["status"] == "True" and conds["Failed"]["reason"] == "ImageNotSet"
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["message"] == "no image"
    assert conds["Ready"]["lastTransitionTime"] == "2030-01-01T09:05:00Z"
    # Untouched: Suspended keeps its time and its (older) observed generation.
    assert conds["Suspended"]["lastTransitionTime"] == "2030-01-01T09:00:00Z"
    assert bad["nextRunTime"] is None

    again = st.reconciled(
        bad, generation=2, suspended=True, now=T1, next_run=None, children={}, message="m"
    )
    conds = _by_type(again["conditions"])
    assert (
        conds["Suspended"]["status"] == "True" and conds["Suspended"]["reason"] == "SuspendedBySpec"
    )
    assert all(c["observedGeneration"] == 2 for c in again["conditions"])


def _job(name: str, *conditions: tuple[str, str], start: str = "2030-01-01T09:00:00Z") -> dict:
    return {
        "metadata": {"name": name, "creationTimestamp": start},
        "status": {
            "startTime": start,
            **({"completionTime": "2030-01-01T09:01:00Z"} if conditions else {}),
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": f"{r} happened"}
                for t, r in conditions
            ],
        },
    }


def test_job_outcomes() -> None:
    assert st.job_outcome(_job("j")) == "Running"
    assert st.job_outcome(_job("j", ("Complete", "Done"))) == "Succeeded"
    assert st.job_outcome(_job("j", ("SuccessCriteriaMet", "Done"))) == "Succeeded"
    assert st.job_outcome(_job("j", ("FailureTarget", "BackoffLimitExceeded"))) == "Failed"
    assert st.job_failure_message(_job("j", ("Failed", "BackoffLimitExceeded"))) == (
        "BackoffLimitExceeded: BackoffLimitExceeded happened"
    )


def test_run_status_of_a_dry_run() -> None:
    result = st.termination_result(
        '{"run_id": "r1", "dry_run": true, "audience_size": 7, "suppressed": 2,'
        ' "samples": [{"userId": "u1", "title": "Hi Ann", "body": "b"}]}'
    )
    status = st.run_status(
        None, _job("j1", ("Complete", "Done")), result=result, now=T1, generation=3, next_run=T1
    )
    assert status is not None
    assert status["lastJob"] == {
        "name": "j1",
        "outcome": "Succeeded",
        "startTime": "2030-01-01T09:00:00Z",
        "completionTime": "2030-01-01T09:01:00Z",
    }
    assert status["lastRunTime"] == "2030-01-01T09:00:00Z"
    assert (status["lastRunId"], status["audienceSize"], status["suppressed"]) == ("r1", 7, 2)
    assert status["samples"] == [{"userId": "u1", "title": "Hi Ann", "body": "b"}]
    [cond] = status["conditions"]
    assert (cond["type"], cond["status"], cond["observedGeneration"]) == (
        "LastRunSucceeded",
        "True",
        3,
    )


def test_run_status_of_a_failure_and_of_an_older_job() -> None:
    failed = st.run_status(
        None,
        _job("j2", ("Failed", "BackoffLimitExceeded")),
        result={"error": "broker down"},
        now=T1,
        generation=1,
        next_run=None,
    )
    assert failed is not None
    assert failed["lastJob"]["outcome"] == "Failed"
    assert "BackoffLimitExceeded" in failed["lastJob"]["message"]
    assert "broker down" in failed["lastJob"]["message"]
    assert failed["conditions"][0]["status"] == "False"
    assert "samples" not in failed and "nextRunTime" not in failed
    newer = {"lastJob": {"name": "j3", "startTime": "2030-01-01T10:00:00Z"}}
    assert (
        st.run_status(newer, _job("j2"), result=None, now=T1, generation=1, next_run=None) is None
    )


def test_garbage_termination_messages_are_ignored() -> None:
    assert st.termination_result(None) is None
    assert st.termination_result("Traceback (most recent call last): ...") is None
    assert st.termination_result("[1, 2]") is None

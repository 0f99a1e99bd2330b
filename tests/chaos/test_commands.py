"""The commands' arguments become the fault tests' settings (no Herald is started)."""

from __future__ import annotations

import pytest

from . import kill_consumers


def test_each_consumer_gets_a_load_of_its_own_unless_together() -> None:
    every = list(kill_consumers.SERVICES)
    assert kill_consumers.kill_groups(every, together=False) == (
        "notifications;recommendations;scheduler"
    )
    assert kill_consumers.kill_groups(every, together=True) == (
        "notifications;recommendations+scheduler"
    )
    assert kill_consumers.kill_groups(["scheduler"], together=True) == "scheduler"


def test_unknown_service_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        kill_consumers.main(["--services", "gateway"])
    assert "unknown services ['gateway']" in capsys.readouterr().err

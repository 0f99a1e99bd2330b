"""Email normalization, the password policy and hashing (no servers needed)."""

import pytest
from herald_common.errors import BadUserInput
from herald_users.credentials import (
    Passwords,
    check_password_policy,
    normalize_email,
    normalize_name,
)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann.Smith@Example.COM \n", "ann.smith@example.com"),
        ("o'brien+news@mail.example.co.uk", "o'brien+news@mail.example.co.uk"),
        ("x@xn--bcher-kva.example", "x@xn--bcher-kva.example"),
    ],
)
def test_emails_are_normalized(raw: str, normalized: str) -> None:
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "plainaddress",
        "@example.com",
        "ann@",
        "ann@@example.com",
        "ann@example",
        "ann@example.c",
        "ann@-example.com",
        "ann@exa_mple.com",
        "ann..smith@example.com",
        ".ann@example.com",
        "ann smith@example.com",
        "ann@example..com",
        "a" * 65 + "@example.com",
        "ann@" + "a" * 250 + ".com",
    ],
)
def test_invalid_emails_name_the_field(raw: str) -> None:
    with pytest.raises(BadUserInput) as info:
        normalize_email(raw)
    assert info.value.field == "email"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("Short1!", "at least 10"),
        ("a" * 129 + "B", "at most 128"),
        ("alllowercaseletters", "two of"),
        ("ALLUPPERCASELETTERS", "two of"),
        ("12345678901234", "two of"),
        ("!!!!!!!!!!!!!!", "two of"),
        ("ann@example.com", "not be the email"),
        ("ANN@example.com", "not be the email"),
    ],
)
def test_weak_passwords_are_refused(password: str, why: str) -> None:
    with pytest.raises(BadUserInput, match=why) as info:
        check_password_policy(password, "ann@example.com")
    assert info.value.field == "password"


@pytest.mark.parametrize(
    "password", ["correct horse battery", "lowercase123", "Mixed-Case-Words", "a" * 127 + "1"]
)
def test_acceptable_passwords(password: str) -> None:
    check_password_policy(password, "ann@example.com")


def test_names() -> None:
    assert normalize_name("  Ann   Smith ") == "Ann Smith"
    for bad in ("", "   ", "x" * 101, "Ann\x00"):
        with pytest.raises(BadUserInput) as info:
            normalize_name(bad)
        assert info.value.field == "name"


def test_hashing_round_trip_and_unknown_account() -> None:
    passwords = Passwords(time_cost=1, memory_kib=1024, parallelism=1)
    stored = passwords.hash("correct-Horse-battery")
    assert "correct-Horse-battery" not in stored and stored.startswith("$argon2id$")
    assert passwords.verify(stored, "correct-Horse-battery")
    assert not passwords.verify(stored, "wrong-Horse-battery")
    assert not passwords.verify(None, "decoy password that never matches")
    assert not passwords.verify("not-a-hash", "anything")
    assert not passwords.verify(stored, "x" * 10_000)
    stronger = Passwords(time_cost=2, memory_kib=2048, parallelism=1)
    assert stronger.needs_rehash(stored)

"""The /dns grammar: what responders type at 3 a.m., and the errors they get back."""

import pytest

from bot.commands import (
    ChangeCommand,
    HelpCommand,
    RequestFormCommand,
    RollbackCommand,
    ShowCommand,
    StatusCommand,
    parse,
)
from core.errors import InvalidInput
from core.records import RecordType


def test_set_with_several_values_ttl_and_reason() -> None:
    command = parse('set API.Example.test A 203.0.113.11 203.0.113.10 ttl=60 reason="INC-42 fail over"')
    assert isinstance(command, ChangeCommand)
    (edit,) = command.edits
    assert edit.name == "api.example.test."
    assert edit.rtype is RecordType.A
    assert edit.after is not None
    assert edit.after.values == ("203.0.113.10", "203.0.113.11")
    assert edit.after.ttl == 60
    assert command.reason == "INC-42 fail over"


def test_txt_values_keep_spaces_and_equals_signs() -> None:
    command = parse('set _spf.example.test TXT "v=spf1 -all" "second one" reason="rotate"')
    assert isinstance(command, ChangeCommand)
    assert command.edits[0].after is not None
    assert command.edits[0].after.values == ("second one", "v=spf1 -all")


def test_slack_formatting_is_undone() -> None:
    command = parse("set <http://api.example.test|api.example.test> CNAME lb.example.test reason=\u201cINC 7\u201d")
    assert isinstance(command, ChangeCommand)
    assert command.edits[0].after is not None
    assert command.edits[0].after.values == ("lb.example.test.",)
    assert command.reason == "INC 7"


def test_mx_and_srv_values_are_quoted_and_normalised() -> None:
    command = parse('set example.test MX "10 MX1.example.test" "20 mx2.example.test." reason="mail failover"')
    assert isinstance(command, ChangeCommand)
    assert command.edits[0].after is not None
    assert command.edits[0].after.values == ("10 mx1.example.test.", "20 mx2.example.test.")


def test_delete_has_no_values() -> None:
    command = parse('delete old.example.test AAAA reason="decommissioned"')
    assert isinstance(command, ChangeCommand)
    assert command.edits[0].after is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", RequestFormCommand()),
        ("show api.example.test", ShowCommand("api.example.test.", None)),
        ("show API.example.test. aaaa", ShowCommand("api.example.test.", RecordType.AAAA)),
        ("help", HelpCommand()),
        ("status", StatusCommand(None)),
        ("status bg-abc234", StatusCommand("BG-ABC234")),
        ("rollback BG-ABC234", RollbackCommand("BG-ABC234")),
    ],
)
def test_other_commands(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("set api.example.test A 203.0.113.10", "reason is required"),
        ('set api.example.test A 203.0.113.999 reason="x"', "not an IPv4 address"),
        ('set api.example.test AAAA 203.0.113.1 reason="x"', "not an IPv6 address"),
        ('set api.example.test CAA "0 issue ca.example" reason="x"', "not supported"),
        ('set api.example.test MX 10 mx.example.test reason="x"', "not a valid MX value"),
        ('set api.example.test A reason="x"', "needs a name, a type and at least one value"),
        ('set api.example.test A 203.0.113.1 ttl=abc reason="x"', "not a number"),
        ('set api.example.test A 203.0.113.1 ttl=0 reason="x"', "out of range"),
        ('set api.example.test CNAME a.example.test b.example.test reason="x"', "only one target"),
        ('set bad..name A 203.0.113.1 reason="x"', "not a valid DNS name"),
        ('set api.example.test A 203.0.113.1 reason="unclosed', "not closed"),
        ('delete api.example.test A 203.0.113.1 reason="x"', "exactly a name and a type"),
        ("frobnicate", "Unknown subcommand"),
    ],
)
def test_bad_input_says_what_to_fix(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse(text)
    assert says in error.value.user_text()

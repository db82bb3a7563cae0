"""Test-suite wiring: every real server the tests need is started by the fixtures below."""

pytest_plugins = [
    "tests.fixtures.openbao",
    "tests.fixtures.bind",
    "tests.fixtures.slack",
    "tests.fixtures.store",
    "tests.fixtures.bot",
    "tests.fixtures.moto_sts",
    "tests.fixtures.powerdns",
    "tests.fixtures.moto",
]

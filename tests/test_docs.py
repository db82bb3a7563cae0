"""The README's examples are the first thing people copy: they must load as they are."""

import re
import tomllib
from fractions import Fraction
from pathlib import Path

from approvals.policy import load_policy
from config import AppConfig

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _block(after_heading: str, language: str) -> str:
    section = README.split(after_heading, 1)[1]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block after {after_heading}"
    return match.group(1)


def test_readme_policy_example_loads_and_means_what_it_says() -> None:
    policy = load_policy(_block("## Approval policy", "yaml"), source="README.md")
    (rule,) = policy.rules
    assert rule.name == "web-failover"
    assert rule.approvals.count == 2 and rule.approvals.sealed_count == 3
    assert policy.person_by_slack("U04DAVE") is not None
    assert policy.safety.max_change_fraction == Fraction(3, 10) and policy.safety.min_zone_rrsets == 10


def test_readme_config_reference_is_a_valid_config() -> None:
    config = AppConfig.model_validate(tomllib.loads(_block("### Configuration reference", "toml")))
    (zone,) = config.zones
    assert [p.kind for p in zone.paths] == ["powerdns", "rfc2136", "rfc2136"]
    assert zone.paths[2].credentials.source == "sealed"
    assert "dns-api" in config.vaults


def test_every_test_the_fault_table_names_exists() -> None:
    """The fault table's claims are only as good as the tests it cites: each must exist by that name."""
    root = Path(__file__).resolve().parents[1]
    operations = (root / "docs" / "operations.md").read_text()
    table = operations[operations.index("## Fault injection") :]
    cited: set[tuple[str, str]] = set()
    for cell in re.findall(r"\|[^|\n]*test_\w+\.py::[^|\n]*\|?\s*$", table, flags=re.MULTILINE):
        module = ""
        for part in re.split(r"[;,]\s*", cell.strip("| ")):
            named = re.match(r"(?:(test_\w+\.py))?::(test_\w+)", part.strip())
            if named:
                module = named.group(1) or module
                cited.add((module, named.group(2)))
    assert len(cited) >= 40
    sources = {path.name: path.read_text() for path in (root / "tests").rglob("test_*.py")}
    missing = sorted((module, name) for module, name in cited if f"def {name}(" not in sources.get(module, ""))
    assert missing == []

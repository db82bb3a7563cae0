"""Fuzz the two parsers people feed by hand: the `/dns` command text and the approval policy file.

Every input is generated from a fixed seed: valid examples mutated (characters flipped, inserted,
deleted; words swapped; lines duplicated or dropped; YAML nodes replaced by junk) plus random text.
An input either parses, or is refused with the project's typed error (InvalidInput for commands,
PolicyError for policies) carrying a message for people. Anything else is a crash, reported with
the input that caused it.

    python -m bench.fuzz_inputs [--commands 100000] [--policies 100000] [--seed 1]
Expected: 0 crashes, 0 unclear messages.
"""

from __future__ import annotations

import argparse
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from approvals.policy import PolicyError, load_policy
from bench._common import console, save, show
from bot.commands import parse
from core.errors import InvalidInput

EXAMPLE_POLICY = Path(__file__).resolve().parents[1] / "docs" / "examples" / "policy.yaml"
SEED_COMMANDS = (
    'set api.example.com A 203.0.113.10 ttl=60 reason="INC-42 primary LB down"',
    'set www.example.com CNAME standby.lb.example.com. reason="INC-7 fail over"',
    'set example.com MX "10 mx1.example.com" "20 mx2.example.com" reason="INC-9 mail"',
    "set _sip._tcp.example.com SRV \"10 5 5060 sip.example.com\" ttl=300 reason='INC-3'",
    'set txt.example.com TXT "v=spf1 include:_spf.example.com -all" reason="INC-5 spf"',
    'set v6.example.com AAAA 2001:db8::10 2001:db8::11 ttl=30 reason="INC-6"',
    'delete old.example.com A reason="INC-8 retire"',
    "status BG-7K3Q9X",
    "status",
    "rollback BG-7K3Q9X",
    "help",
    "set <http://api.example.com|api.example.com> A 203.0.113.10 reason=\u201cINC-1 smart quotes\u201d",
    "set api.example.com A 203.0.113.10 reason=&lt;INC-2&gt; &amp; more",
)
SPECIAL = [
    '"',
    "'",
    "=",
    "ttl=",
    "reason=",
    "<",
    ">",
    "&amp;",
    "|",
    "\\",
    "\u201c",
    "\u2019",
    "\x00",
    "\n",
    "\t",
    "..",
    ".",
    "-",
    "*",
    "@",
    "A",
    "TXT",
    "CNAME",
    "99999999999999999999",
    "-1",
    "0",
    "::",
    "%",
    "{",
    "}",
    "\u00b3",
    "\u278e",
    "\u0663",
    "\uff13",
]  # fmt: skip  (the last four: digits str.isdigit() accepts)
JUNK_NODES: tuple[object, ...] = (None, True, 0, -1, 1.5, "", "x", "*", [], {}, [None], {"a": 1}, "0s", "99999d", "@")


@dataclass
class Result:
    """What one parser did with its inputs."""

    name: str
    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    crashes: list[tuple[str, str]] = field(default_factory=list)
    unclear: list[tuple[str, str]] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)
    crash_kinds: Counter[str] = field(default_factory=Counter)  # exception type and where it was raised
    seconds: float = 0.0


def mutate_text(rng: random.Random, text: str) -> str:
    """One to four character- or word-level edits."""
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(text))
        if op == 0 and text:
            text = text[:pos] + text[pos + 1 :]
        elif op == 1:
            text = text[:pos] + rng.choice(SPECIAL) + text[pos:]
        elif op == 2:
            text = text[:pos] + chr(rng.randint(0, 0x2FFF)) + text[pos:]
        elif op == 3:
            words = text.split(" ")
            rng.shuffle(words)
            text = " ".join(words)
        elif op == 4:
            text = text[:pos] + text[pos : pos + rng.randint(1, 20)] * rng.randint(2, 5) + text[pos:]
        else:
            text = text[:pos]
    return text


def random_text(rng: random.Random) -> str:
    alphabet = rng.choice(["ascii", "printable", "unicode"])
    size = rng.randint(0, 80)
    if alphabet == "ascii":
        return "".join(chr(rng.randint(32, 126)) for _ in range(size))
    if alphabet == "printable":
        return " ".join(rng.choice(SPECIAL + ["set", "delete", "api.example.com", "1.2.3.4"]) for _ in range(size // 4))
    return "".join(chr(rng.randint(0, 0x10FFF)) for _ in range(size))


def command_inputs(rng: random.Random, count: int) -> Iterator[str]:
    for i in range(count):
        yield random_text(rng) if i % 5 == 0 else mutate_text(rng, rng.choice(SEED_COMMANDS))


def replace_at(document: object, path: list[int], value: object) -> object:
    """The document with one node (chosen by ``path``) replaced by ``value``."""
    if not path or not isinstance(document, dict | list) or not document:
        return value
    if isinstance(document, dict):
        keys = list(document)
        chosen = keys[path[0] % len(keys)]
        return {**document, chosen: replace_at(document[chosen], path[1:], value)}
    index = path[0] % len(document)
    return [*document[:index], replace_at(document[index], path[1:], value), *document[index + 1 :]]


def policy_inputs(rng: random.Random, count: int) -> Iterator[str | bytes]:
    text = EXAMPLE_POLICY.read_text()
    document = yaml.safe_load(text)
    lines = text.splitlines(keepends=True)
    for i in range(count):
        kind = i % 5
        if kind == 0:  # one node replaced with junk of another shape
            path = [rng.randrange(50) for _ in range(rng.randint(0, 6))]
            yield yaml.safe_dump(replace_at(document, path, rng.choice(JUNK_NODES)))
        elif kind == 1:  # lines dropped, duplicated or re-indented
            edited = list(lines)
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(len(edited))
                choice = rng.randrange(3)
                if choice == 0:
                    del edited[at]
                elif choice == 1:
                    edited.insert(at, edited[at])
                else:
                    edited[at] = " " * rng.randint(0, 6) + edited[at].lstrip()
            yield "".join(edited)
        elif kind == 2:  # characters flipped somewhere in the file
            yield mutate_text(rng, text)
        elif kind == 3:  # raw bytes: not UTF-8, NULs, truncated
            raw = bytearray(text.encode())
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            yield bytes(raw[: rng.randint(0, len(raw))])
        else:
            yield random_text(rng)


def run(
    name: str, inputs: Iterator[str | bytes], attempt: Callable[[str | bytes], object], refusal: type[InvalidInput]
) -> Result:
    result = Result(name)
    started = time.perf_counter()
    for value in inputs:
        result.inputs += 1
        try:
            attempt(value)
            result.accepted += 1
        except refusal as error:
            result.refused += 1
            message = error.user_text()
            if not message.strip() or "Traceback" in message or " object at 0x" in message:
                result.unclear.append((repr(value)[:300], message[:300]))
            result.messages[" ".join(message.split()[:5])] += 1
        except Exception as error:  # a crash: what this script exists to find
            where = traceback.extract_tb(error.__traceback__)[-1]
            kind = f"{type(error).__name__} at {Path(where.filename).name}:{where.lineno}"
            result.crash_kinds[kind] += 1
            result.crashes.append((repr(value)[:300], "".join(traceback.format_exception_only(error)).strip()))
    result.seconds = time.perf_counter() - started
    return result


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--commands", type=int, default=100_000)
    options.add_argument("--policies", type=int, default=100_000)
    options.add_argument("--seed", type=int, default=1)
    args = options.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 - reproducible inputs, not secrets
    results = [
        run("/dns command parser", command_inputs(rng, args.commands), lambda t: parse(str(t)), InvalidInput),
        run("policy loader", policy_inputs(rng, args.policies), lambda t: load_policy(t, source="fuzz.yaml"),
            PolicyError),
    ]  # fmt: skip
    show(
        f"Fuzzed inputs (seed {args.seed})",
        ["parser", "inputs", "accepted", "refused (clear error)", "crashes", "unclear messages", "inputs/s"],
        [
            [r.name, f"{r.inputs:,}", f"{r.accepted:,}", f"{r.refused:,}", str(len(r.crashes)), str(len(r.unclear)),
             f"{r.inputs / r.seconds:,.0f}"]
            for r in results
        ],
    )  # fmt: skip
    for r in results:
        console.print(f"[bold]{r.name}[/bold]: most common refusals", highlight=False)
        for message, n in r.messages.most_common(6):
            console.print(f"  {n:>7,}  {message}…", highlight=False)
        for kind, n in r.crash_kinds.most_common():
            example = next(value for value, error in r.crashes if error.startswith(kind.split(" at ")[0]))
            console.print(f"  [red]crash[/red] {n:>7,}  {kind}; e.g. input {example[:120]}", highlight=False)
        for value, message in r.unclear[:5]:
            console.print(f"  [red]unclear[/red] {message!r} for input {value[:120]}", highlight=False)
    path = save(
        "fuzz_inputs",
        {
            "seed": args.seed,
            "results": [
                {"parser": r.name, "inputs": r.inputs, "accepted": r.accepted, "refused": r.refused,
                 "crashes": len(r.crashes), "crash_kinds": dict(r.crash_kinds), "crash_examples": r.crashes[:10],
                 "unclear": r.unclear[:20], "seconds": round(r.seconds, 1)}
                for r in results
            ],
        },
    )  # fmt: skip
    console.print(f"saved {path}")
    return 1 if any(r.crashes or r.unclear for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())

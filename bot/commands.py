"""The /canary subcommands: one table that drives both parsing and `/canary help`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from workers.domain.catalogue import OVERRIDABLE

SLASH = "/canary"


@dataclass(frozen=True)
class Subcommand:
    """One subcommand: its words, how many positional arguments, which key=value options."""

    name: str
    args: tuple[str, ...]
    summary: str
    optional: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    option_hints: dict[str, str] = field(default_factory=dict)

    @property
    def usage(self) -> str:
        words = [self.name, *(f"<{a}>" for a in self.args), *(f"[{a}]" for a in self.optional)]
        words += [f"[{key}={self.option_hints.get(key, '…')}]" for key in self.options]
        return " ".join(words)


COMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        "deploy",
        ("service", "image"),
        "start a canary of the image; the card and its thread appear in this channel",
        options=OVERRIDABLE,
        option_hints={"steps": "10,25,50,100", "bake": "5m", "gates": "manual|auto|final"},
    ),
    Subcommand(
        "status",
        (),
        "what is deploying now (everywhere, or for one service with its last check's figures)",
        ("service",),
    ),
    Subcommand("abort", ("service",), "roll the service's running deployment back now"),
    Subcommand(
        "history",
        ("service",),
        "the service's last deployments with links to their threads",
        ("n",),
    ),
    Subcommand("services", (), "the catalogue's services, their stable image and traffic"),
    Subcommand(
        "check",
        ("service",),
        "read-only checks: the stable found, its metric series, its alarms, the bot in its channel",
    ),
    Subcommand("help", (), "this list"),
)
BY_NAME = {c.name: c for c in COMMANDS}
#: How many deployments `history` lists when no n is given, and at most.
HISTORY_DEFAULT, HISTORY_MAX = 10, 50


class UsageError(ValueError):
    """A command that cannot be read; the message says how to write it."""


@dataclass(frozen=True)
class Command:
    """A parsed command line."""

    name: str
    args: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)

    def arg(self, index: int, default: str | None = None) -> str | None:
        return self.args[index] if index < len(self.args) else default


def parse(text: str) -> Command:
    """Read `/canary …` text into a Command, or raise UsageError saying what is wrong."""
    words = (text or "").split()
    if not words:
        return Command("help")
    name, rest = words[0].lower(), words[1:]
    sub = BY_NAME.get(name)
    if sub is None:
        guess = difflib.get_close_matches(name, list(BY_NAME), n=1)
        hint = f" Did you mean `{guess[0]}`?" if guess else ""
        raise UsageError(f'No subcommand "{words[0]}".{hint} Try `{SLASH} help`.')
    args: list[str] = []
    options: dict[str, str] = {}
    for word in rest:
        key, eq, value = word.partition("=")
        if eq and not sub.options:
            raise UsageError(f'"{word}": `{name}` takes no options. Usage: `{SLASH} {sub.usage}`')
        if eq:
            if key not in sub.options:
                allowed = ", ".join(sub.options)
                raise UsageError(
                    f'"{word}": unknown option, use {allowed}. Usage: `{SLASH} {sub.usage}`'
                )
            if key in options:
                raise UsageError(f'"{key}=" is given twice.')
            options[key] = value
        else:
            args.append(word)
    if not len(sub.args) <= len(args) <= len(sub.args) + len(sub.optional):
        raise UsageError(f"Usage: `{SLASH} {sub.usage}`")
    if name == "history" and len(args) > 1:
        n = args[1]
        # isdigit() alone admits "²", which int() refuses; three digits bound the conversion.
        if not (n.isascii() and n.isdigit() and len(n) <= 3 and 1 <= int(n) <= HISTORY_MAX):
            raise UsageError(f'"{n}": n must be a number from 1 to {HISTORY_MAX}.')
    return Command(name, tuple(args), options)


def help_text() -> str:
    """The help, generated from COMMANDS so it cannot drift from the parser."""
    lines = [f"*{SLASH}*: canary deployments on ECS, one step at a time"]
    lines += [f"• `{SLASH} {c.usage}`: {c.summary}" for c in COMMANDS]
    lines.append(
        "Durations are written 90s, 5m, 1h30m. Gates: manual (after every step), "
        "final (before 100 % only), auto (none). Options may only add caution: more steps, "
        "a longer bake, stricter gates."
    )
    return "\n".join(lines)

"""Slack messages as plain terminal text: what a person reads in the channel and the thread."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sandbox.slack_emulator import Posted

_DATE = re.compile(r"<!date\^(\d+)\^([^|>]*)(?:\|[^>]*)?>")
_USER = re.compile(r"<@([A-Z0-9]+)>")
_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
_BARE_LINK = re.compile(r"<(https?://[^>]+)>")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_CODE = re.compile(r"`([^`\n]*)`")


def clock(epoch: float) -> str:
    """Local wall-clock time with seconds, as the sandbox compresses minutes into seconds."""
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


def plain(text: str, people: Mapping[str, str] | None = None) -> str:
    """Slack mrkdwn as a reader sees it: names for mentions, local times, link labels."""
    names = people or {}

    def date(match: re.Match[str]) -> str:
        moment = datetime.fromtimestamp(int(match.group(1)))
        if "{date" in match.group(2):
            return moment.strftime("%b %d %H:%M:%S")
        return moment.strftime("%H:%M:%S")

    text = _DATE.sub(date, text)
    text = _USER.sub(lambda m: "@" + names.get(m.group(1), m.group(1)), text)
    text = _GROUP.sub(lambda m: "@" + names.get(m.group(1), m.group(1)), text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or names.get(m.group(1), m.group(1))), text)
    text = _LINK.sub(lambda m: f"‹{m.group(2)}›", text)
    text = _BARE_LINK.sub(lambda m: m.group(1), text)
    text = _BOLD.sub(r"\1", text)
    return _CODE.sub(r"\1", text)


def button(element: dict[str, Any]) -> str:
    return f"[ {element.get('text', {}).get('text', '?')} ]"


def message_lines(message: Posted, people: Mapping[str, str] | None = None) -> list[str]:
    """The lines one message shows: its sections, its context (dimmer) and its buttons."""
    if not message.blocks:
        return plain(message.text, people).splitlines() or [""]
    lines: list[str] = []
    for block in message.blocks:
        kind = block.get("type")
        if kind == "section":
            lines += plain(block.get("text", {}).get("text", ""), people).splitlines()
        elif kind == "context":
            texts = [plain(e.get("text", ""), people) for e in block.get("elements", [])]
            lines += [f"  {line}" for t in texts for line in t.splitlines()]
        elif kind == "actions":
            buttons = [button(e) for e in block.get("elements", []) if e.get("type") == "button"]
            if buttons:
                lines.append(" ".join(buttons))
    return lines


def render_thread(
    card: Posted,
    replies: list[Posted],
    people: Mapping[str, str] | None = None,
    channel_name: str | None = None,
) -> str:
    """The card as the channel shows it now, then every reply of its thread with its time."""
    where = f"#{channel_name or card.channel}"
    edited = f", edited {card.updates}×" if card.updates else ""
    out = [f"┌ {where} · {clock(card.posted_at)} · canary (app){edited}"]
    out += [f"│ {line}" for line in message_lines(card, people)]
    noun = "reply" if len(replies) == 1 else "replies"
    out.append(f"└ thread · {len(replies)} {noun}")
    for reply in replies:
        lines = message_lines(reply, people)
        out.append(f"    {clock(reply.posted_at)}  {lines[0] if lines else ''}")
        out += [f"              {line}" for line in lines[1:]]
    return "\n".join(out)


def render_answer(text: str, people: Mapping[str, str] | None = None) -> str:
    """An ephemeral answer ("Only visible to you"), indented under the command."""
    lines = plain(text, people).splitlines() or [""]
    return "\n".join(["  ┊ only visible to you:"] + [f"  ┊ {line}" for line in lines])

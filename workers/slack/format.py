"""Block Kit building blocks shared by the card, the thread replies and the bot's answers.

Pure functions: limits, action ids, the Message type, small formatters (mentions, times; counts
and rates are those of a verdict's sentence, workers/analysis/sentences.py, so the sentence and
its figures read alike) and block helpers. Nothing here talks to Slack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from workers.analysis.judge import Counts, Verdict, format_count, format_pct
from workers.analysis.latency import format_ms, percentile_stat
from workers.domain.durations import format_duration
from workers.domain.images import repository, short_name
from workers.domain.pipelines import pipeline_of

#: Block Kit limits: characters in one text object, blocks in one message
#: (https://docs.slack.dev/reference/block-kit/blocks/section-block: "text ... Maximum length
#: for the text in this field is 3000 characters"; https://docs.slack.dev/reference/block-kit/
#: blocks: "You can include up to 50 blocks in each message").
MAX_TEXT = 3000
MAX_BLOCKS = 50
#: A message's top-level text: chat.postMessage "will truncate messages containing more than
#: 40,000 characters" (https://docs.slack.dev/reference/methods/chat.postMessage, "Truncating
#: content"); the strict emulator refuses them with msg_too_long.
MAX_MESSAGE_TEXT = 40_000


Block = dict[str, Any]


@dataclass(frozen=True)
class Message:
    """What to post: the notification text (also the fallback) and the blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {"text": clip(self.text, 3900), "blocks": self.blocks[:MAX_BLOCKS]}


# small formatters ------------------------------------------------------------------------------
def clip(text: str, limit: int = MAX_TEXT) -> str:
    """`text` cut to `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fit_lines(lines: list[str], limit: int = MAX_MESSAGE_TEXT, *, line_limit: int = 1000) -> str:
    """`lines` joined by newlines, each clipped to `line_limit`, as many as fit in `limit`
    characters; the rest become "… n more"."""
    kept: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        line = clip(line, line_limit)
        left = len(lines) - i - 1
        # room for this line, and for the "… n more" line should a later one not fit
        tail = len(f"\n… {left} more") if left else 0
        if used + len(line) + (1 if kept else 0) + tail > limit:
            kept.append(f"… {len(lines) - i} more")
            break
        kept.append(line)
        used += len(line) + (1 if len(kept) > 1 else 0)
    return "\n".join(kept)


def mention(member: str) -> str:
    """A Slack mention of a user (`U…`/`W…`) or a user group (`S…`); a CI pipeline standing
    where a person would (workers.domain.pipelines) is named, not mentioned."""
    pipeline = pipeline_of(member)
    if pipeline is not None:
        return f"pipeline {pipeline}"
    if member.startswith("S"):
        return f"<!subteam^{member}>"
    return f"<@{member}>"


def mentions(members: list[str]) -> str:
    return ", ".join(mention(m) for m in members)


def why(reason: str | None, actor: str | None) -> str | None:
    """A plain reason with the person who gave it, when one did: "aborted by @dana"."""
    return f"{reason} by {mention(actor)}" if reason and actor else reason


def duration(seconds: float) -> str:
    """5m, 1h30m, 0.4 s for sub-second spans."""
    if seconds < 1:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f} s"
    return format_duration(round(seconds / 60) * 60 if seconds >= 600 else seconds)


def clock(seconds: float) -> str:
    """m:ss for a countdown."""
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def when(epoch: float, fmt: str = "{time}") -> str:
    """A time Slack shows in each reader's own time zone, with a UTC fallback."""
    moment = datetime.fromtimestamp(epoch, UTC)
    fallback = moment.strftime("%H:%M UTC") if fmt == "{time}" else moment.strftime("%b %d %H:%M")
    return f"<!date^{int(epoch)}^{fmt}|{fallback}>"


def version_change(old_image: str | None, new_image: str) -> str:
    """ "payments:v41 → payments:v42" (just "→ payments:v42" while the old one is unknown)."""
    new = short_name(new_image)
    if not old_image:
        return f"→ {new}"
    return f"{short_name(old_image)} → {new}"


def tag_change(old_image: str | None, new_image: str) -> str:
    """ "v41 → v42" when both images are of one repository, else the short names."""
    if old_image and repository(old_image) == repository(new_image):
        return f"{_tag(old_image)} → {_tag(new_image)}"
    return version_change(old_image, new_image)


def _tag(image: str) -> str:
    name = short_name(image)
    return name.split(":", 1)[1] if ":" in name else name


def short_id(dep_id: str) -> str:
    return f"#{dep_id}"


# verdict figures -------------------------------------------------------------------------------
def _side(counts: Counts) -> str:
    if not counts.requests:
        return "no requests"
    req, err = counts.requests, counts.errors
    return f"{format_count(req)} req, {format_count(err)} × 5xx ({format_pct(err / req * 100)})"


def verdict_figures(verdict: Verdict | None, *, with_stable: bool = True) -> str:
    """ "canary 1,204 req, 3 × 5xx (0.25 %) · stable … · threshold 1.0 % · alarms OK"."""
    if verdict is None:
        return "no figures"
    firing = verdict.alarms_firing
    alarms = f"alarms in ALARM: {', '.join(firing)}" if firing else "alarms OK"
    if verdict.alarms_only:  # no request counts to show: say what the step was judged by
        return f"judged by alarms only (no metric tells the versions apart) · {alarms}"
    parts = [f"canary {_side(verdict.canary)}"]
    if with_stable:
        parts.append(f"stable {_side(verdict.stable)}")
    parts.append(f"threshold {format_pct(verdict.threshold_pct)}")
    latency = verdict.latency
    if latency is not None and latency.canary_ms is not None:
        # The medians of the step's judged periods (workers/analysis/latency.py).
        shown = f"{percentile_stat(latency.percentile)} {format_ms(latency.canary_ms)}"
        if with_stable and latency.stable_ms is not None:
            shown += f" vs {format_ms(latency.stable_ms)}"
        parts.append(shown)
    firing = verdict.alarms_firing
    parts.append(f"alarms in ALARM: {', '.join(firing)}" if firing else "alarms OK")
    return " · ".join(parts)


# block helpers ---------------------------------------------------------------------------------
def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, 75), "emoji": True}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text)}]}


def text_message(text: str) -> Message:
    return Message(text, [section(clip(text))])


def confirm(title: str, text: str) -> dict[str, Any]:
    return {
        "title": plain(title),
        "text": {"type": "mrkdwn", "text": text},
        "confirm": plain("Yes"),
        "deny": plain("Cancel"),
    }

"""The App Home tab (pure): what is deploying now, its open gate, each service's last deployments.

One view for every viewer, built with slack_sdk's Block Kit models and fitted to Slack's limits
(https://docs.slack.dev/reference/views/home-tab-views: "Max of 100 blocks"; a section's text
at most 3,000 characters): what does not fit is counted in a line saying so.

The gate's buttons are the thread's (same action ids, same value): a click here goes through
exactly the checks of a click in the thread (bot/handlers.py, bot/permissions.may). A click in the
App Home comes from no channel, so a service whose catalogue entry names a `channel` (the only
place it may be steered from) gets no buttons here, only a link to its thread.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from workers.domain.deployment import Deployment
from workers.domain.state import State
from workers.slack.answers import history_line, link
from workers.slack.buttons import ABORT, APPROVE, ButtonValue
from workers.slack.card import card_status
from workers.slack.format import MAX_TEXT, clip, mention, version_change, when

#: Blocks in a Home tab view (home-tab-views: "Max of 100 blocks").
MAX_HOME_BLOCKS = 100
#: Finished deployments listed per service.
HISTORY_PER_SERVICE = 3
#: Characters of a button's label (Block Kit button: "text ... Maximum length ... is 75").
MAX_BUTTON_TEXT = 75
#: Size of a Home tab view (views.publish: "view_too_large ... greater than 250kb"), with room
#: for the view's own fields.
MAX_VIEW_SIZE = 200_000
#: Characters kept for the "… n more" line and for the tail of the view.
MORE_SIZE, TAIL_SIZE = 400, 4_000
#: `block_id` prefix of a gate's buttons in the App Home (the thread's is "canary_gate").
HOME_GATE_BLOCK = "canary_home_gate"


@dataclass(frozen=True)
class HomeSnapshot:
    """What the App Home shows, as read from Redis at one moment."""

    #: Deployments not yet finished.
    running: Sequence[Deployment]
    #: Each catalogue service's newest finished deployments, newest first (services in order).
    recent: Mapping[str, Sequence[Deployment]]
    #: Thread permalinks by deployment id (those whose card was posted).
    links: Mapping[str, str] = field(default_factory=dict)
    #: The catalogue's `channel` of each service as it is now (None: no channel rule). A service
    #: missing here is not in the catalogue (any more): no buttons.
    channels: Mapping[str, str | None] = field(default_factory=dict)


def steerable_here(snapshot: HomeSnapshot, service: str) -> bool:
    """Whether the service may be approved or aborted from the App Home: it is in the catalogue
    and names no `channel` (a click here comes from no channel; see the module docstring)."""
    return service in snapshot.channels and snapshot.channels[service] is None


def render_home(snapshot: HomeSnapshot, now: float, *, notice: str | None = None) -> View:
    """The Home tab view; `notice` (a refusal of this viewer's click) goes on top."""
    head: list[Block] = [
        HeaderBlock(text=PlainTextObject(text="🐤 Canary deployments", emoji=True)),
        _context(
            f"As of {when(now)} · updated when a deployment changes state · "
            "`/canary status` for the latest checks"
        ),
    ]
    if notice:
        head.append(_section(f"⚠️ {notice}"))
    running = sorted(
        snapshot.running, key=lambda d: (d.state != State.AWAITING_APPROVAL, d.created_at)
    )
    now_items = [_running_item(snapshot, d) for d in running]
    history_items = [
        _history_item(service, deps, snapshot.links, now)
        for service, deps in snapshot.recent.items()
        if deps
    ]
    never = [s for s, deps in snapshot.recent.items() if not deps]

    # The tail always fits: a divider, its title, and a last line (services never deployed).
    tail_fixed = 3
    running_title = _section(f"*Deploying now* ({len(running)})")
    room = _Room(
        blocks=MAX_HOME_BLOCKS - len(head) - 1 - tail_fixed,
        size=MAX_VIEW_SIZE - _size([*head, running_title]) - TAIL_SIZE,
    )
    # Running deployments first, but leave the history at least one service and its "more".
    reserve = _Room(2, 2 * MORE_SIZE) if history_items else _Room(0, 0)
    shown_now = _fit(now_items, room, reserve, "deployment", "running")
    if not running:
        shown_now = [_context("Nothing is deploying right now.")]
    room = room.less(shown_now)
    shown_history = _fit(history_items, room, _Room(0, 0), "service", "with past deployments")
    blocks = [*head, running_title, *shown_now, DividerBlock()]
    blocks.append(_section("*Last deployments*"))
    blocks += shown_history
    if never:
        names = ", ".join(f"*{s}*" for s in never)
        blocks.append(_context(f"No deployment yet: {names}."))
    elif not history_items:
        blocks.append(_context("No deployment has finished yet."))
    return View(type="home", blocks=blocks[:MAX_HOME_BLOCKS])


@dataclass(frozen=True)
class _Room:
    """What is left of a view: blocks, and bytes of its JSON."""

    blocks: int
    size: int

    def less(self, blocks: Sequence[Block]) -> _Room:
        return _Room(self.blocks - len(blocks), self.size - _size(blocks))


def _size(blocks: Sequence[Block]) -> int:
    """Bytes of the blocks' JSON as slack_sdk sends it (non-ASCII escaped: the larger count)."""
    return sum(len(json.dumps(b.to_dict())) for b in blocks)


def _fit(
    items: list[list[Block]], room: _Room, reserve: _Room, noun: str, what: str
) -> list[Block]:
    """As many whole items as fit in `room` less `reserve`, then one line counting the rest."""
    out: list[Block] = []
    for i, item in enumerate(items):
        left = room.less(out)
        more = 1 if i < len(items) - 1 else 0  # room for the "more" line after this one
        if len(item) + more > left.blocks - reserve.blocks or (
            _size(item) + more * MORE_SIZE > left.size - reserve.size
        ):
            rest = len(items) - i
            plural = noun if rest == 1 else f"{noun}s"
            out.append(
                _context(
                    f"… {rest} more {plural} {what} not shown here (the Home tab is full): "
                    "`/canary status`, `/canary history <service>`."
                )
            )
            return out
        out += item
    return out


def _running_item(snapshot: HomeSnapshot, dep: Deployment) -> list[Block]:
    """A running deployment: one section, then its gate (buttons, or where to decide it)."""
    url = snapshot.links.get(dep.id)
    steps = len(dep.settings.steps)
    where = f"step {dep.step_number} of {steps}" if dep.step_number else f"{steps} steps"
    text = (
        f"*{dep.service}* #{dep.id}  `{version_change(dep.old_image, dep.image)}`  "
        f"requested by {mention(dep.requester)}\n"
        f"*{card_status(dep)}* · {where} · {dep.weight} % → canary · {link(url)}"
    )
    item: list[Block] = [_section(text)]
    if dep.state != State.AWAITING_APPROVAL:
        return item
    step, weight = dep.step_number + 1, dep.next_weight
    if not steerable_here(snapshot, dep.service):
        thread = f"<{url}|its thread>" if url else "its thread"
        channel = snapshot.channels.get(dep.service)
        why_not = (
            f"{dep.service} is steered only from <#{channel}>: decide it in {thread} there"
            if channel
            else f"{dep.service} is not in the catalogue any more: see {thread}"
        )
        item.append(_context(f"✋ Waiting for approval of {weight} %. {why_not}."))
        return item
    value = ButtonValue(dep.id, step).encode()
    item.append(
        ActionsBlock(
            block_id=f"{HOME_GATE_BLOCK}:{dep.id}",
            elements=[
                ButtonElement(
                    action_id=APPROVE,
                    text=PlainTextObject(text=clip(f"Approve {weight} %", MAX_BUTTON_TEXT)),
                    style="primary",
                    value=value,
                ),
                ButtonElement(
                    action_id=ABORT,
                    text=PlainTextObject(text="Abort"),
                    style="danger",
                    value=value,
                    confirm=ConfirmObject(
                        title=clip(f"Abort {dep.service}?", 100),
                        text=MarkdownTextObject(
                            text="Traffic goes back to the stable version at once."
                        ),
                        confirm="Yes",
                        deny="Cancel",
                    ),
                ),
            ],
        )
    )
    return item


def _history_item(
    service: str, deps: Sequence[Deployment], links: Mapping[str, str], now: float
) -> list[Block]:
    lines = [f"*{service}*"] + [history_line(d, links.get(d.id), now) for d in deps]
    return [_section(_fit_text(lines))]


def _fit_text(lines: list[str]) -> str:
    """Whole lines within a section's 3,000 characters (the first line always)."""
    text = lines[0]
    for line in lines[1:]:
        if len(text) + 1 + len(line) > MAX_TEXT:
            break
        text += "\n" + line
    return clip(text)


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text)))


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text))])

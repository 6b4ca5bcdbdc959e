"""What the emulator keeps, as people would see it: a request received (Call), a message as
its channel shows it now (Posted), a person's App Home tab (HomeView), a file on its way through
files_upload_v2 (Upload); and how a stored message reads in the Web API's answers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Call:
    """One request the mock received."""

    method: str
    params: dict[str, Any]
    status: int = 200


@dataclass
class Posted:
    """A message as the channel shows it now (updates applied)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    updates: int = 0
    #: Wall-clock time the message was posted (Slack shows it beside the message).
    posted_at: float = field(default_factory=time.time)
    #: Slack message metadata (event_type, event_payload), returned with include_all_metadata.
    metadata: dict[str, Any] | None = None
    #: Files shared with the message (files.completeUploadExternal), as the Web API lists them.
    files: list[dict[str, Any]] = field(default_factory=list)

    def buttons(self) -> list[dict[str, Any]]:
        """Every button in the message's actions blocks."""
        return buttons_of(self.blocks)

    def button(self, action_id: str) -> dict[str, Any] | None:
        return next((b for b in self.buttons() if b.get("action_id") == action_id), None)

    def shown(self) -> str:
        """The text a reader sees: every text of every block, else the fallback text."""
        parts = [shown_of(self.blocks)] if self.blocks else []
        parts = [p for p in parts if p]
        if self.files:
            head = parts or ([self.text] if self.text else [])
            parts = head + [f"[file: {f.get('title') or f.get('name')}]" for f in self.files]
        return "\n".join(parts) if parts else self.text


@dataclass
class HomeView:
    """A person's App Home tab as the last views.publish left it."""

    user: str
    id: str
    blocks: list[dict[str, Any]]
    #: How many times it was published.
    publishes: int = 1

    def buttons(self) -> list[dict[str, Any]]:
        return buttons_of(self.blocks)

    def button(self, action_id: str, value_prefix: str = "") -> dict[str, Any] | None:
        """The first button `action_id` whose value starts with `value_prefix`."""
        return next(
            (
                b
                for b in self.buttons()
                if b.get("action_id") == action_id
                and str(b.get("value", "")).startswith(value_prefix)
            ),
            None,
        )

    def block_of(self, button: dict[str, Any]) -> str:
        """The block_id of the actions block holding `button`."""
        return next(
            (
                b.get("block_id", "")
                for b in self.blocks
                if b.get("type") == "actions" and button in b.get("elements", [])
            ),
            "",
        )

    def shown(self) -> str:
        return shown_of(self.blocks)


def buttons_of(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every button in the actions blocks of `blocks`."""
    return [
        element
        for block in blocks
        if block.get("type") == "actions"
        for element in block.get("elements", [])
        if element.get("type") == "button"
    ]


def shown_of(blocks: list[dict[str, Any]]) -> str:
    """Every text of every block, as a reader sees them (buttons as [label])."""
    parts: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text.get("text", ""))
        for element in block.get("elements", []):
            if element.get("type") in ("mrkdwn", "plain_text"):
                parts.append(element.get("text", ""))
            elif element.get("type") == "button":
                parts.append(f"[{element['text']['text']}]")
    return "\n".join(parts)


@dataclass
class Upload:
    """A file on its way through files_upload_v2: announced, uploaded, then shared."""

    file_id: str
    filename: str
    length: int
    alt_txt: str | None = None
    data: bytes | None = None
    title: str | None = None
    #: Where it was shared (files.completeUploadExternal), once it was.
    channel: str | None = None
    thread_ts: str | None = None
    message_ts: str | None = None
    #: Where the emulator saved the bytes (`save_dir`), once shared.
    path: Path | None = None

    @property
    def shared(self) -> bool:
        return self.message_ts is not None


def as_api(message: Posted) -> dict[str, Any]:
    """A stored message in the shape the Web API returns it."""
    found: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text}
    if message.blocks:
        found["blocks"] = message.blocks
    if message.thread_ts:
        found["thread_ts"] = message.thread_ts
    if message.metadata:
        found["metadata"] = message.metadata
    if message.files:
        found["files"] = message.files
    return found


def metadata_of(raw: Any) -> dict[str, Any] | None:
    """Metadata arrives as an object in JSON bodies and as a JSON string in form bodies."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return raw if isinstance(raw, dict) else None


def dm_channel(user: str) -> str:
    """The id of the app's direct-message conversation with `user`."""
    return "D" + user[1:]

"""The workspace the emulator keeps: channels (which the bot is in, which are archived), messages
as people see them now, ephemeral answers, App Home tabs, files, the requests received; what
happens in it without the API (a person deletes a message, the bot is invited or removed), and
how tests and the sandbox read it. Its lock is held while a method changes it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sandbox.slack_emulator.records import Call, HomeView, Posted, Upload, dm_channel


class Workspace:
    """Channels, messages, Home tabs and files, as Slack would show them."""

    def __init__(
        self,
        groups: dict[str, list[str]] | None = None,
        *,
        channels: Iterable[str] = (),
        home_tab_enabled: bool = True,
        url: str,
    ) -> None:
        #: Where the emulator answers (upload and response URLs are under it).
        self.url = url
        #: The app's Home tab (the manifest's features.app_home.home_tab_enabled).
        self.home_tab_enabled = home_tab_enabled
        #: Each person's App Home tab as last published.
        self.homes: dict[str, HomeView] = {}
        self.groups: dict[str, list[str]] = dict(groups or {})
        #: Channels the bot is a member of; archived channels.
        self.members: set[str] = set(channels)
        self.archived: set[str] = set()
        #: Messages deleted (chat.delete or delete_as_user), as they read when deleted.
        self.deleted: dict[tuple[str, str], Posted] = {}
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Posted] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        #: response_url posts by the url's number, so an answer is matched to its command.
        self.responses_by_url: dict[str, list[dict[str, Any]]] = {}
        #: What single people were shown, in order: chat.postEphemeral and response_url posts.
        self.private: list[dict[str, Any]] = []
        self.tokens_seen: set[str] = set()
        #: Files by id (files.getUploadURLExternal), with their bytes once uploaded.
        self.uploads: dict[str, Upload] = {}
        #: Scopes the app lacks: the methods that need them answer `missing_scope`.
        self.missing_scopes: set[str] = set()
        self._file_ids = itertools.count(1)
        #: A directory to save shared files in, so a person can open them (the sandbox's).
        self.save_dir: Path | None = None
        self._ts = itertools.count(1)
        self._response_urls = itertools.count(1)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    # the workspace ---------------------------------------------------------------------------
    def invite(self, channel: str) -> None:
        """The bot joins `channel` (/invite @canary)."""
        with self._lock:
            self.members.add(channel)

    def remove_bot(self, channel: str) -> None:
        """Someone removes the bot from `channel`."""
        with self._lock:
            self.members.discard(channel)

    def revoke_scope(self, scope: str) -> None:
        """The app is installed without `scope` (e.g. before `files:write` was added)."""
        with self._lock:
            self.missing_scopes.add(scope)

    def archive(self, channel: str) -> None:
        with self._lock:
            self.archived.add(channel)

    def delete_as_user(self, channel: str, ts: str) -> Posted:
        """A person deletes a message (the bot's card, a gate): gone, its replies stay."""
        with self._changed:
            message = self.messages.pop((channel, ts))
            self.deleted[(channel, ts)] = message
            self._changed.notify_all()
            return message

    def dms(self, user: str) -> list[Posted]:
        """The app's direct messages to `user`, oldest first."""
        with self._lock:
            found = [m for m in self.messages.values() if m.channel == dm_channel(user)]
        return sorted(found, key=lambda m: float(m.ts))

    def home(self, user: str) -> HomeView | None:
        """`user`'s App Home tab as last published, or None."""
        with self._lock:
            return self.homes.get(user)

    def response_url(self) -> str:
        """A fresh response_url whose POSTs land in `responses`."""
        return f"{self.url}/respond/{next(self._response_urls)}"

    def next_ts(self) -> str:
        """A fresh message ts."""
        return f"1700000000.{next(self._ts):06d}"

    def next_file_id(self) -> str:
        """A fresh file id (files.getUploadURLExternal)."""
        return f"F{next(self._file_ids):08d}"

    # reading what people see -----------------------------------------------------------------
    def api_calls(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.status == 200]

    def channel(self, channel: str) -> list[Posted]:
        """Top-level messages of the channel, oldest first, as they read now."""
        with self._lock:
            found = [m for m in self.messages.values() if m.channel == channel and not m.thread_ts]
        return sorted(found, key=lambda m: float(m.ts))

    def message(self, channel: str, ts: str) -> Posted | None:
        """One message as it reads now, or None."""
        with self._lock:
            return self.messages.get((channel, ts))

    def thread(self, channel: str, thread_ts: str, *, files: bool = False) -> list[Posted]:
        """Replies in the thread, oldest first, as they read now. Files shared in it (a message
        with `files` and no text of its own) only with `files=True`: transcripts of what the
        bot wrote read the same with or without its charts (conversations.replies has both)."""
        with self._lock:
            found = [m for m in self.messages.values() if m.thread_ts == thread_ts]
        found = [m for m in found if m.channel == channel and (files or not m.files)]
        return sorted(found, key=lambda m: float(m.ts))

    def shared_files(self, channel: str | None = None) -> list[Upload]:
        """Files shared (in `channel`), in the order they were shared."""
        with self._lock:
            found = [u for u in self.uploads.values() if u.shared]
        found = [u for u in found if channel in (None, u.channel)]
        return sorted(found, key=lambda u: float(u.message_ts or 0))

    def answers_to(self, response_url: str) -> list[dict[str, Any]]:
        """What was posted to one response_url, oldest first."""
        with self._lock:
            return list(self.responses_by_url.get(response_url.rsplit("/", 1)[-1], []))

    def ephemeral_texts(self, user: str | None = None) -> list[str]:
        """Everything shown to one person only: chat.postEphemeral and response_url posts."""
        with self._lock:
            return [p.get("text", "") for p in self.private if user in (None, p.get("user"))]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until `predicate()` is truthy (listeners answer from Bolt's worker threads)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for the mock Slack")
            with self._changed:
                self._changed.wait(min(remaining, 0.05))

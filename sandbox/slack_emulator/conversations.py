"""Who and where: conversations.* (open a direct message, a thread's replies, a channel's
history, a channel's info), usergroups.users.list and auth.test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.slack_emulator.records import as_api, dm_channel

if TYPE_CHECKING:
    from sandbox.slack_emulator.workspace import Workspace


def auth_test(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": True,
        "url": "https://example.slack.com/",
        "team": "Example",
        "team_id": "T0001",
        "user": "canary",
        "user_id": "UBOT",
        "bot_id": "BBOT",
    }


def open_dm(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    users = str(params.get("users", "")).split(",")
    if len(users) != 1 or not users[0]:
        return {"ok": False, "error": "not_enough_users" if not users[0] else "too_many_users"}
    return {"ok": True, "channel": {"id": dm_channel(users[0])}}


def usergroup_users(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    group = params.get("usergroup", "")
    if group not in ws.groups:
        return {"ok": False, "error": "no_such_subteam"}
    return {"ok": True, "users": list(ws.groups[group])}


def replies(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    channel, ts = params.get("channel", ""), params.get("ts", "")
    root = ws.messages.get((channel, ts))
    if root is None:
        return {"ok": False, "error": "thread_not_found"}
    replies = sorted(
        (m for m in ws.messages.values() if m.channel == channel and m.thread_ts == ts),
        key=lambda m: float(m.ts),
    )
    return {"ok": True, "messages": [as_api(m) for m in [root, *replies]]}


def history(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    channel = params.get("channel", "")
    found = sorted(
        (m for m in ws.messages.values() if m.channel == channel and not m.thread_ts),
        key=lambda m: float(m.ts),
        reverse=True,
    )
    return {"ok": True, "messages": [as_api(m) for m in found]}


def info(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    channel = params.get("channel", "")
    return {
        "ok": True,
        "channel": {
            "id": channel,
            "name": f"chan-{channel.lower()}",
            "is_member": channel in ws.members,
            "is_archived": channel in ws.archived,
        },
    }

"""The chat.* methods (post, update, delete, ephemeral, permalink) and posts to a command's
response_url, on the workspace's messages.

A user id as the channel posts in the app's direct messages with that person; a deleted message
(chat.delete, or `delete_as_user` as a person would) answers `message_not_found` to a later
chat.update, as Slack's chat.update documents. A response_url post Slack would refuse (blockkit.py)
answers HTTP 400 with the code as the body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.slack_emulator.blockkit import refusal
from sandbox.slack_emulator.records import Call, Posted, dm_channel, metadata_of

if TYPE_CHECKING:
    from sandbox.slack_emulator.workspace import Workspace


def post_message(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    channel, ts = params["channel"], ws.next_ts()
    if channel[:1] in ("U", "W"):
        channel = dm_channel(channel)
    message = Posted(
        channel=channel,
        ts=ts,
        text=params.get("text", ""),
        blocks=params.get("blocks") or [],
        thread_ts=params.get("thread_ts") or None,
        metadata=metadata_of(params.get("metadata")),
    )
    ws.messages[(channel, ts)] = message
    return {"ok": True, "channel": channel, "ts": ts, "message": {"text": message.text}}


def update(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    key = (params["channel"], params["ts"])
    message = ws.messages.get(key)
    if message is None:
        return {"ok": False, "error": "message_not_found"}
    message.text = params.get("text", message.text)
    if "blocks" in params:
        message.blocks = params.get("blocks") or []
    message.updates += 1
    return {"ok": True, "channel": key[0], "ts": key[1]}


def delete(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    key = (params["channel"], params["ts"])
    message = ws.messages.pop(key, None)
    if message is None:
        return {"ok": False, "error": "message_not_found"}
    ws.deleted[key] = message
    return {"ok": True, "channel": key[0], "ts": key[1]}


def post_ephemeral(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    ws.ephemerals.append(params)
    ws.private.append(params)
    return {"ok": True, "message_ts": ws.next_ts()}


def get_permalink(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    channel, ts = params["channel"], params["message_ts"]
    return {
        "ok": True,
        "channel": channel,
        "permalink": f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}",
    }


def respond(ws: Workspace, url_id: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A POST to response_url `url_id`: (HTTP status, body)."""
    refused = refusal(params)
    if refused:
        ws.calls.append(Call("response_url", params, 400))
        return 400, {"ok": False, "error": refused}
    ws.responses.append(params)
    ws.responses_by_url.setdefault(url_id, []).append(params)
    ws.private.append(params)
    ws.calls.append(Call("response_url", params))
    return 200, {"ok": True}

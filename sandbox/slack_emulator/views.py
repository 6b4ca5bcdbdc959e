"""views.publish: a person's App Home tab (https://docs.slack.dev/reference/methods/views.publish).

It takes `user_id` and `view` (both required: `invalid_arguments` without them), a view of type
`home` Slack would take (blockkit.py), else `invalid_arguments`; a view over 250 kB answers
`view_too_large`; with the app's Home tab off (`home_tab_enabled=False`), `not_enabled`.
Published views are kept per user (`home(user)`) with their buttons.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sandbox.slack_emulator.blockkit import MAX_VIEW_BYTES, valid_home_view
from sandbox.slack_emulator.records import HomeView

if TYPE_CHECKING:
    from sandbox.slack_emulator.workspace import Workspace


def publish(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    user, view = params.get("user_id"), params.get("view")
    if not isinstance(user, str) or not user or not isinstance(view, dict):
        return {"ok": False, "error": "invalid_arguments"}
    if len(json.dumps(view).encode()) > MAX_VIEW_BYTES:
        return {"ok": False, "error": "view_too_large"}
    if view.get("type") == "home" and not ws.home_tab_enabled:
        return {"ok": False, "error": "not_enabled"}
    if not valid_home_view(view):
        return {"ok": False, "error": "invalid_arguments"}
    found = ws.homes.get(user)
    view_id = found.id if found else f"V{len(ws.homes) + 1:08d}"
    ws.homes[user] = HomeView(
        user=user,
        id=view_id,
        blocks=view["blocks"],
        publishes=(found.publishes + 1) if found else 1,
    )
    return {"ok": True, "view": {**view, "id": view_id, "team_id": "T0001"}}

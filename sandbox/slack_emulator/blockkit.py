"""What Slack refuses of a message or a Home tab view, checked as strictly as Slack does.

- every message's blocks are parsed and validated with slack_sdk.models.blocks and checked
  against Block Kit's documented limits (50 blocks, 3,000 characters per text object, 75 per
  button label: https://docs.slack.dev/reference/block-kit/blocks), answering `invalid_blocks`;
  text over 40,000 characters answers `msg_too_long` (chat.postMessage, "Truncating content":
  https://docs.slack.dev/reference/methods/chat.postMessage);
- a Home tab view is parsed with slack_sdk.models.views.View: type `home`, 1 to 100 blocks, each
  valid as above (a private_metadata of at most 3,000 characters, a callback_id of at most 255:
  https://docs.slack.dev/reference/views/home-tab-views); views.publish refuses one over 250 kB.

Pure: each function takes what Slack was sent and says whether it would take it.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

#: Slack's documented limits (see the module docstring).
MAX_BLOCKS, MAX_TEXT_OBJECT, MAX_MESSAGE_TEXT = 50, 3000, 40_000
#: A Home tab view: at most 100 blocks, and 250 kB in all (views.publish: "view_too_large").
MAX_VIEW_BLOCKS, MAX_VIEW_BYTES = 100, 250_000
#: Limits of a confirmation dialog's texts (composition objects: confirm).
CONFIRM_LIMITS = {"title": 100, "text": 300, "confirm": 30, "deny": 30}


def refusal(params: dict[str, Any]) -> str | None:
    """Slack's error code for a message it would refuse, else None."""
    text = params.get("text")
    blocks = params.get("blocks")
    if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
        return "msg_too_long"
    if blocks is None or blocks == []:
        return None
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for raw in blocks:
        if not isinstance(raw, dict) or not valid_block(raw):
            return "invalid_blocks"
    return None


def valid_block(raw: dict[str, Any]) -> bool:
    """The block parses with slack_sdk's models, passes their validation and Block Kit's limits."""
    try:
        block = Block.parse(raw)
        if block is None:  # a type slack_sdk does not know
            return False
        block.validate_json()
        for element in getattr(block, "elements", None) or []:
            validate = getattr(element, "validate_json", None)
            if validate is not None:
                validate()
    except (SlackObjectFormationError, KeyError, TypeError, ValueError):
        return False
    return within_limits(raw)


def valid_home_view(view: dict[str, Any]) -> bool:
    """A Home tab view Slack takes: slack_sdk's View validation, then each block's."""
    blocks = view.get("blocks")
    if view.get("type") != "home" or not isinstance(blocks, list):
        return False
    if not 0 < len(blocks) <= MAX_VIEW_BLOCKS:
        return False
    try:
        View(**view).validate_json()
    except (SlackObjectFormationError, KeyError, TypeError, ValueError):
        return False
    return all(isinstance(b, dict) and valid_block(b) for b in blocks)


def within_limits(value: Any) -> bool:
    """Every text object at most 3,000 characters; confirmation dialogs within theirs."""
    if isinstance(value, list):
        return all(within_limits(v) for v in value)
    if not isinstance(value, dict):
        return True
    is_text = value.get("type") in ("mrkdwn", "plain_text")
    if is_text and len(str(value.get("text", ""))) > MAX_TEXT_OBJECT:
        return False
    confirm = value.get("confirm")
    if isinstance(confirm, dict):
        for key, limit in CONFIRM_LIMITS.items():
            part = confirm.get(key)
            if isinstance(part, dict) and len(str(part.get("text", ""))) > limit:
                return False
    return all(within_limits(v) for v in value.values())

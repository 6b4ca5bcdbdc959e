"""People in Slack, simulated: signed slash commands and button clicks sent to the bot over HTTP.

The bodies and signatures are the ones Slack sends, so the bot checks them exactly as in
production; answers come back either in the HTTP response or through the emulator's
response_url and chat.postEphemeral.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from sandbox.slack_emulator import HomeView, Posted, SlackEmulator

TEAM = "T0001"
APP_ID = "A0001"
EVENTS_PATH = "/slack/events"


def signed_headers(body: str, *, secret: str, timestamp: int | None = None) -> dict[str, list[str]]:
    """The headers Slack sends with `body`, signed with the app's signing secret."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "content-type": ["application/x-www-form-urlencoded"],
        "x-slack-request-timestamp": [ts],
        "x-slack-signature": [signature],
    }


def command_body(text: str, *, user: str, channel: str, response_url: str, team: str = TEAM) -> str:
    """The form body of a `/canary <text>` slash command typed in the workspace `team`."""
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": team,
            "is_enterprise_install": "false",
            "channel_id": channel,
            "user_id": user,
            "command": "/canary",
            "text": text,
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    )


def block_actions_body(
    action_id: str,
    value: str,
    *,
    user: str,
    channel: str,
    message_ts: str,
    thread_ts: str | None,
    response_url: str,
    block_id: str = "canary_gate",
    team: str = TEAM,
    user_team: str | None = None,
) -> str:
    """The form body of a click on a button of the message `message_ts`.

    `team` is the workspace the click happened in, `user_team` the person's own (a Slack
    Connect guest's differs); Slack sends both (docs.slack.dev, block_actions payload).
    """
    payload = {
        "type": "block_actions",
        "team": {"id": team},
        "user": {"id": user, "team_id": user_team or team},
        "is_enterprise_install": False,
        "enterprise": None,
        "api_app_id": APP_ID,
        "container": {"type": "message", "channel_id": channel, "message_ts": message_ts},
        "channel": {"id": channel},
        "message": {"ts": message_ts, "thread_ts": thread_ts, "text": ""},
        "response_url": response_url,
        "trigger_id": "1.2.3",
        "actions": _clicked(action_id, block_id, value),
    }
    return urlencode({"payload": json.dumps(payload)})


def signed_json_headers(
    body: str, *, secret: str, timestamp: int | None = None
) -> dict[str, list[str]]:
    """The headers of an Events API request (a JSON body), signed with the signing secret."""
    headers = signed_headers(body, secret=secret, timestamp=timestamp)
    return {**headers, "content-type": ["application/json"]}


def home_opened_body(user: str, *, team: str = TEAM, tab: str = "home") -> str:
    """The Events API body of `app_home_opened`: `user` opened the app's Home tab
    (docs.slack.dev/reference/events/app_home_opened, in the event_callback envelope)."""
    now = time.time()
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": team,
            "api_app_id": APP_ID,
            "type": "event_callback",
            "event_id": f"Ev{int(now * 1e6)}",
            "event_time": int(now),
            "event": {
                "type": "app_home_opened",
                "user": user,
                "channel": "D" + user[1:],
                "tab": tab,
                "event_ts": f"{now:.6f}",
            },
            "authorizations": [
                {"team_id": team, "user_id": "UBOT", "is_bot": True, "is_enterprise_install": False}
            ],
            "is_ext_shared_channel": False,
        }
    )


def home_click_body(
    action_id: str,
    value: str,
    *,
    user: str,
    view_id: str,
    blocks: list[dict[str, object]],
    block_id: str,
    team: str = TEAM,
) -> str:
    """The form body of a click on a button of the App Home tab: the payload carries the `view`
    (type home) and a container of type view; no channel, no message, no response_url
    (docs.slack.dev/reference/interaction-payloads/block_actions-payload)."""
    payload = {
        "type": "block_actions",
        "team": {"id": team},
        "user": {"id": user, "team_id": team},
        "is_enterprise_install": False,
        "enterprise": None,
        "api_app_id": APP_ID,
        "container": {"type": "view", "view_id": view_id},
        "trigger_id": "1.2.3",
        "view": {
            "id": view_id,
            "team_id": team,
            "type": "home",
            "blocks": blocks,
            "private_metadata": "",
            "callback_id": "",
            "state": {"values": {}},
            "app_id": APP_ID,
            "external_id": "",
            "app_installed_team_id": team,
            "bot_id": "BBOT",
        },
        "actions": _clicked(action_id, block_id, value),
    }
    return urlencode({"payload": json.dumps(payload)})


@dataclass(frozen=True)
class Reply:
    """The bot's HTTP answer to one request."""

    status: int
    body: str
    response_url: str


@dataclass
class SlackUser:
    """One person: types `/canary …` in a channel and clicks buttons in threads."""

    user: str
    bot_url: str
    secret: str
    slack: SlackEmulator
    channel: str = "C0DEPLOYS"

    def post(self, body: str, headers: dict[str, list[str]] | None = None) -> int:
        """POST `body` to the bot's /slack/events, signed unless `headers` are given."""
        return self._send(body, headers)[0]

    def _send(self, body: str, headers: dict[str, list[str]] | None = None) -> tuple[int, str]:
        chosen = headers or signed_headers(body, secret=self.secret)
        flat = {name: values[0] for name, values in chosen.items()}
        request = urllib.request.Request(
            self.bot_url.rstrip("/") + EVENTS_PATH, data=body.encode(), headers=flat
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def command(self, text: str, *, channel: str | None = None) -> Reply:
        """Type `/canary <text>`; return the acknowledgement (its body may be the answer)."""
        url = self.slack.response_url()
        body = command_body(text, user=self.user, channel=channel or self.channel, response_url=url)
        status, answer = self._send(body)
        return Reply(status, answer, url)

    def ask(self, text: str, *, channel: str | None = None, timeout: float = 10.0) -> str:
        """Type `/canary <text>` and return what only this person is shown in answer."""
        reply = self.command(text, channel=channel)
        if reply.status != 200:
            raise RuntimeError(f"the bot answered HTTP {reply.status}: {reply.body}")
        if reply.body:
            return str(json.loads(reply.body).get("text", ""))
        answers = self.slack.wait_for(lambda: self.slack.answers_to(reply.response_url), timeout)
        return str(answers[0].get("text", ""))

    def click(self, message: Posted, action_id: str) -> int:
        """Click the button `action_id` of `message`; return the HTTP status of the ack."""
        button = message.button(action_id)
        if button is None:
            raise LookupError(f"message {message.ts} has no {action_id} button")
        block_id = next(
            (
                b.get("block_id", "")
                for b in message.blocks
                if b.get("type") == "actions" and button in b.get("elements", [])
            ),
            "",
        )
        body = block_actions_body(
            action_id,
            str(button.get("value", "")),
            user=self.user,
            channel=message.channel,
            message_ts=message.ts,
            thread_ts=message.thread_ts,
            response_url=self.slack.response_url(),
            block_id=block_id,
        )
        return self.post(body)

    def open_home(self) -> int:
        """Open the app's Home tab (Slack sends `app_home_opened`); the HTTP status of the ack."""
        body = home_opened_body(self.user)
        return self.post(body, signed_json_headers(body, secret=self.secret))

    def click_in_home(self, action_id: str, dep_id: str, home: HomeView | None = None) -> int:
        """Click the button `action_id` of deployment `dep_id` in this person's Home tab (as
        last published, or `home`: what their screen showed); the HTTP status of the ack."""
        home = home or self.slack.home(self.user)
        button = home.button(action_id, f"{dep_id}:") if home else None
        if home is None or button is None:
            raise LookupError(f"no {action_id} button of {dep_id} in {self.user}'s Home tab")
        body = home_click_body(
            action_id,
            str(button.get("value", "")),
            user=self.user,
            view_id=home.id,
            blocks=home.blocks,
            block_id=home.block_of(button),
        )
        return self.post(body)

    def told(self, since: int = 0) -> list[str]:
        """What this person alone was shown (ephemeral messages), from index `since`."""
        return self.slack.ephemeral_texts(self.user)[since:]

    def click_and_hear(self, message: Posted, action_id: str, timeout: float = 2.0) -> str | None:
        """Click and return what the clicker alone is told (None if nothing within `timeout`)."""
        before = len(self.told())
        status = self.click(message, action_id)
        if status != 200:
            raise RuntimeError(f"the bot answered the click with HTTP {status}")
        try:
            return str(self.slack.wait_for(lambda: self.told(before), timeout)[0])
        except AssertionError:
            return None


def thread_link_ts(url: str) -> str:
    """The ts a permalink points at: ".../p1700000000000001" -> "1700000000.000001"."""
    digits = url.rstrip("/").rsplit("/p", 1)[-1].split("?", 1)[0]
    return f"{digits[:-6]}.{digits[-6:]}"


def _clicked(action_id: str, block_id: str, value: str) -> list[dict[str, object]]:
    """A block_actions payload's `actions`: the one button clicked, now."""
    return [
        {
            "type": "button",
            "action_id": action_id,
            "block_id": block_id,
            "value": value,
            "action_ts": str(time.time()),
        }
    ]

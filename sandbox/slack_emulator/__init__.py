"""A local Slack Web API: keeps channels, threads and ephemeral answers as people would see them.

Bound to 127.0.0.1 on a free port; `base_url` goes into WebClient(base_url=...) or SLACK_API_URL.
Used by the sandbox, `make demo` and the end-to-end tests (sandbox.world); the unit tests use
it as tests/slack_mock.MockSlack (member of the tests' channels, no rate limit by default).

As strict as Slack where the product could get it wrong; each rule, with the Slack reference it
follows, is in the module that keeps it:

- server.py         SlackEmulator: the HTTP server, a call dispatched to its method (METHODS),
                    faults injected (`fail`, `heal`) and a slow Slack (`delay`)
- limits.py         what is refused before a method runs: faults, membership (`not_in_channel`,
                    `is_archived`), scopes (`missing_scope`), chat.postMessage's rate (HTTP 429)
- blockkit.py       what Slack refuses of a message or a Home tab view (`invalid_blocks`...)
- chat.py           chat.* and response_url posts
- files.py          files_upload_v2's three calls (`uploads`, `shared_files`)
- views.py          views.publish: the App Home tab (`home(user)`)
- conversations.py  conversations.*, usergroups.users.list, auth.test
- workspace.py      the state kept, what happens in it without the API, how it is read
- records.py        Call, Posted, HomeView, Upload: what is kept, as people see it
"""

from sandbox.slack_emulator.blockkit import (
    MAX_BLOCKS,
    MAX_MESSAGE_TEXT,
    MAX_TEXT_OBJECT,
    MAX_VIEW_BLOCKS,
    MAX_VIEW_BYTES,
)
from sandbox.slack_emulator.files import MAX_FILE_BYTES
from sandbox.slack_emulator.limits import Fault
from sandbox.slack_emulator.records import Call, HomeView, Posted, Upload
from sandbox.slack_emulator.server import SlackEmulator

__all__ = [
    "MAX_BLOCKS",
    "MAX_FILE_BYTES",
    "MAX_MESSAGE_TEXT",
    "MAX_TEXT_OBJECT",
    "MAX_VIEW_BLOCKS",
    "MAX_VIEW_BYTES",
    "Call",
    "Fault",
    "HomeView",
    "Posted",
    "SlackEmulator",
    "Upload",
]

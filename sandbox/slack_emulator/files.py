"""Files shared the way slack-sdk's `files_upload_v2` does it, in three calls, each as strict as
Slack's reference says (https://docs.slack.dev/reference/methods/files.getUploadURLExternal and
.../files.completeUploadExternal):

- files.getUploadURLExternal needs `filename` and a positive `length` and answers an
  `upload_url` and a `file_id`;
- the bytes POSTed to that URL must be exactly `length` long (HTTP 200 "OK - <length>", else
  400); the URL is good for one upload;
- files.completeUploadExternal shares uploaded files once ("This method can only be called
  once"), in a channel the bot is in, as a reply when `thread_ts` names a top-level message
  ("Never use a reply's ts value; use its parent instead"). The file then shows in the thread
  as a message with `files`; `uploads` keeps the bytes (and `save_dir`, if set, a copy).

Both methods need the `files:write` scope (limits.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.slack_emulator.records import Call, Posted, Upload

if TYPE_CHECKING:
    from sandbox.slack_emulator.workspace import Workspace

#: Slack's limit on one file (https://docs.slack.dev/messaging/working-with-files: 1 GB).
MAX_FILE_BYTES = 1024**3


def get_upload_url(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    filename = str(params.get("filename") or "")
    try:
        length = int(params.get("length", ""))
    except ValueError:
        return {"ok": False, "error": "invalid_arguments"}
    if not filename:
        return {"ok": False, "error": "invalid_arguments"}
    if length <= 0:  # "missing_argument: typically only occurs when the length is 0"
        return {"ok": False, "error": "missing_argument"}
    if length > MAX_FILE_BYTES:
        return {"ok": False, "error": "file_upload_size_restricted"}
    alt = params.get("alt_txt")
    if alt is not None and len(str(alt)) > 1000:
        return {"ok": False, "error": "alt_txt_too_large"}
    file_id = ws.next_file_id()
    ws.uploads[file_id] = Upload(file_id, filename, length, alt)
    return {"ok": True, "upload_url": f"{ws.url}/upload/{file_id}", "file_id": file_id}


def complete_upload(ws: Workspace, params: dict[str, Any]) -> dict[str, Any]:
    raw = params.get("files")
    try:
        files = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {"ok": False, "error": "invalid_arguments"}
    if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
        return {"ok": False, "error": "invalid_arguments"}
    uploads = []
    for f in files:
        upload = ws.uploads.get(str(f.get("id", "")))
        # Unknown, never uploaded, or already shared ("can only be called once").
        if upload is None or upload.data is None or upload.shared:
            return {"ok": False, "error": "file_not_found"}
        uploads.append((upload, str(f.get("title") or upload.filename)))
    channel = params.get("channel_id") or None
    thread_ts = params.get("thread_ts") or None
    if thread_ts and not channel:
        return {"ok": False, "error": "invalid_arguments"}
    if channel is None:  # "If not specified the file will be private": nothing to show
        for upload, title in uploads:
            upload.title, upload.message_ts = title, "private"
        return {"ok": True, "files": [{"id": u.file_id, "title": t} for u, t in uploads]}
    if thread_ts:
        root = ws.messages.get((channel, thread_ts))
        if root is None or root.thread_ts:  # gone, or a reply's ts instead of its parent's
            return {"ok": False, "error": "thread_not_found"}
    ts = ws.next_ts()
    shown = []
    for upload, title in uploads:
        upload.title, upload.channel, upload.thread_ts = title, channel, thread_ts
        upload.message_ts = ts
        if ws.save_dir is not None and upload.data is not None:
            ws.save_dir.mkdir(parents=True, exist_ok=True)
            upload.path = ws.save_dir / Path(upload.filename).name
            upload.path.write_bytes(upload.data)
        shown.append(
            {
                "id": upload.file_id,
                "name": upload.filename,
                "title": title,
                "size": upload.length,
                "mimetype": mimetype(upload.filename),
                "alt_txt": upload.alt_txt,
            }
        )
    ws.messages[(channel, ts)] = Posted(
        channel=channel,
        ts=ts,
        text=params.get("initial_comment") or "",
        thread_ts=thread_ts,
        files=shown,
    )
    return {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in shown]}


def receive(ws: Workspace, file_id: str, data: bytes) -> tuple[int, str]:
    """A POST of a file's bytes to its upload URL: (HTTP status, body)."""
    upload = ws.uploads.get(file_id)
    if upload is None or upload.data is not None or upload.shared:
        # an unknown URL, or one already used: it is good for one upload
        ws.calls.append(Call("upload", {"file_id": file_id}, 404))
        return 404, "upload url not found"
    if len(data) != upload.length:
        ws.calls.append(Call("upload", {"file_id": file_id}, 400))
        return 400, f"length mismatch: {len(data)} bytes, announced {upload.length}"
    upload.data = data
    ws.calls.append(Call("upload", {"file_id": file_id, "length": len(data)}))
    return 200, f"OK - {len(data)}"


def mimetype(filename: str) -> str:
    return "image/png" if filename.lower().endswith(".png") else "application/octet-stream"

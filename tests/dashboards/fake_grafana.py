"""A local HTTP server that answers like Grafana's documented dashboard and folder API, and checks every
request against it: method and path, ``Authorization: Bearer <token>``, JSON content type, the
``POST /api/dashboards/db`` payload shape (``dashboard`` object with title and a uid of at most 40
``[A-Za-z0-9_-]``, ``id`` null or absent, ``folderUid`` not the deprecated ``folderId``, boolean
``overwrite``, string ``message``, no other keys). A request that breaks the contract gets 400 and is
recorded in ``violations`` so a test can fail on it.

Source of the contract: grafana/grafana docs/sources/developers/http_api/dashboard.md and folder.md.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
DB_KEYS = {"dashboard", "folderUid", "folderId", "overwrite", "message"}


@dataclass
class GrafanaState:
    tokens: dict[str, str] = field(default_factory=lambda: {"glsa_editor": "Editor", "glsa_viewer": "Viewer"})
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    fail_next: list[Any] = field(default_factory=list)  # status, or (status, body), answered before serving
    lose_answer_next: int = 0  # serve these requests normally, then answer 502 (a proxy that lost the reply)
    next_id: int = 1


class Handler(BaseHTTPRequestHandler):
    state: GrafanaState
    server_version = "Grafana"
    lose_answer = False

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: Any) -> None:
        if self.lose_answer:  # served, but the client sees a 502 from the proxy in front
            self.lose_answer = False
            status, body = 502, {"message": "Bad Gateway"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _violation(self, text: str) -> None:
        self.state.violations.append(f"{self.command} {self.path}: {text}")
        self._send(400, {"message": text})

    def _handle(self) -> None:
        self.lose_answer = False
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        record = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": None}
        self.state.requests.append(record)
        if self.state.fail_next:
            status = self.state.fail_next.pop(0)
            status, body = status if isinstance(status, tuple) else (status, {"message": "injected failure"})
            self._send(status, body)
            return
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            self._send(401, {"message": "Unauthorized"})
            return
        role = self.state.tokens.get(auth[len("Bearer ") :])
        if role is None:
            self._send(401, {"message": "invalid API key"})
            return
        if raw:
            if "application/json" not in self.headers.get("Content-Type", ""):
                self._violation("body sent without Content-Type: application/json")
                return
            try:
                record["body"] = json.loads(raw)
            except ValueError:
                self._violation("body is not JSON")
                return
        route = (self.command, self.path.split("?")[0])
        if self.state.lose_answer_next:
            self.state.lose_answer_next -= 1
            self.lose_answer = True
        if route == ("POST", "/api/dashboards/db"):
            self._save_dashboard(record["body"], role)
        elif self.command == "GET" and self.path.startswith("/api/dashboards/uid/"):
            stored = self.state.dashboards.get(self.path[len("/api/dashboards/uid/") :])
            if stored is None:
                self._send(404, {"message": "Dashboard not found"})
            else:
                board = {**stored["dashboard"], "id": stored["id"], "version": stored["version"]}
                meta = {
                    "url": f"/d/{board['uid']}/x",
                    "folderUid": stored["folderUid"] or "",
                    "version": stored["version"],
                }
                self._send(200, {"dashboard": board, "meta": meta})
        elif route == ("POST", "/api/folders"):
            self._create_folder(record["body"], role)
        elif route == ("GET", "/api/folders"):
            folders = self.state.folders.values()
            self._send(200, [{"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in folders])
        elif self.command == "GET" and self.path.startswith("/api/folders/"):
            uid = self.path[len("/api/folders/") :]
            folder = self.state.folders.get(uid)
            self._send(200, folder) if folder else self._send(404, {"message": "folder not found"})
        else:
            self._violation("not a documented endpoint")

    do_GET = _handle
    do_POST = _handle

    def _create_folder(self, body: Any, role: str) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("title"), str) or not body["title"]:
            self._violation("folder payload needs a non-empty title")
            return
        unknown = set(body) - {"uid", "title", "parentUid", "description"}
        if unknown:
            self._violation(f"unknown folder keys {sorted(unknown)}")
            return
        if role == "Viewer":
            self._send(403, {"message": "Access denied"})
            return
        uid = body.get("uid") or f"f{self.state.next_id}"
        if not UID.match(uid):
            self._violation("folder uid must be 1-40 characters of A-Z a-z 0-9 _ -")
            return
        if uid in self.state.folders:
            self._send(409, {"message": "a folder with the same uid already exists"})
            return
        folder = {
            "id": self.state.next_id,
            "uid": uid,
            "title": body["title"],
            "url": f"/dashboards/f/{uid}/",
            "version": 1,
        }
        self.state.next_id += 1
        self.state.folders[uid] = folder
        self._send(200, folder)

    def _save_dashboard(self, body: Any, role: str) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            self._violation("payload needs a 'dashboard' object")
            return
        unknown = set(body) - DB_KEYS
        if unknown:
            self._violation(f"unknown payload keys {sorted(unknown)}")
            return
        if "folderId" in body:
            self._violation("folderId is deprecated: send folderUid")
            return
        if not isinstance(body.get("overwrite", False), bool) or not isinstance(body.get("message", ""), str):
            self._violation("overwrite must be a boolean and message a string")
            return
        board = body["dashboard"]
        if board.get("id") is not None:
            self._violation("dashboard.id must be null (create/update by uid) for a portable import")
            return
        title, uid = board.get("title"), board.get("uid")
        if not isinstance(title, str) or not title.strip():
            self._send(400, {"message": "Dashboard title cannot be empty", "status": "empty-name"})
            return
        if not isinstance(uid, str) or not UID.match(uid):
            self._send(400, {"message": "uid contains illegal characters or is too long", "status": "bad-uid"})
            return
        folder_uid = body.get("folderUid")
        if folder_uid and folder_uid not in self.state.folders:
            self._send(400, {"message": "folder not found", "status": "folder-not-found"})
            return
        if role == "Viewer":
            self._send(403, {"message": "Access denied to save dashboard"})
            return
        # Grafana's dashboard service: an existing uid is updated when the versions agree (or overwrite);
        # a different version is "version-mismatch"; another dashboard with this title in the folder is
        # "name-exists" (pkg/services/dashboards/service: getExistingDashboardByIDOrUIDForUpdate).
        overwrite = bool(body.get("overwrite"))
        existing = self.state.dashboards.get(uid)
        if existing is not None and board.get("version") != existing["version"] and not overwrite:
            self._send(412, {"status": "version-mismatch", "message": "The dashboard has been changed by someone else"})
            return
        clash = [
            u
            for u, d in self.state.dashboards.items()
            if u != uid and d["dashboard"].get("title") == title and d["folderUid"] == folder_uid
        ]
        if clash and not overwrite:
            self._send(
                412, {"status": "name-exists", "message": "A dashboard with the same name in the folder already exists"}
            )
            return
        version = (existing["version"] + 1) if existing else 1
        board = {k: v for k, v in board.items() if k not in ("id", "version")}
        stored = {
            "dashboard": board,
            "folderUid": folder_uid,
            "message": body.get("message", ""),
            "version": version,
            "id": existing["id"] if existing else self.state.next_id,
        }
        if existing is None:
            self.state.next_id += 1
        self.state.dashboards[uid] = stored
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        self._send(
            200,
            {
                "id": stored["id"],
                "uid": uid,
                "url": f"/d/{uid}/{slug}",
                "status": "success",
                "version": version,
                "slug": slug,
            },
        )


class FakeGrafana:
    """Run the server on ``port`` in a thread; ``url``, ``state`` for assertions; ``close()`` to stop."""

    def __init__(self, port: int) -> None:
        self.state = GrafanaState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

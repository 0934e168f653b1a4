"""A small HTTP server on 127.0.0.1 for the weights tests: plain files, 404s, cut-off bodies,
Google Drive's confirmation page, the two Hugging Face hub routes hf_hub_download uses and the
two API routes snapshot_download adds (a repository's commit and its file list)."""
from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
import urllib.parse
from collections import Counter


class Server:
    """``files``: path -> bytes. ``cut``: paths whose body stops half-way (the connection is
    closed after announcing the full length). ``slow``: seconds to wait before sending a body.
    ``gets`` counts the GET requests per path."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.html: set[str] = set()                     # paths served as text/html
        self.drive: dict[str, tuple[str, bytes]] = {}   # drive id -> (file name, bytes)
        self.hub: dict[tuple[str, str], bytes] = {}     # (repo, filename) -> bytes
        self.corrupt: set[tuple[str, str]] = set()      # hub files whose last byte flips in transit
        self.commit = "0123456789abcdef0123456789abcdef01234567"
        self.slow = 0.0
        self.gets: Counter = Counter()
        handler = self._handler()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code, body=b"", headers=(), head=False, cut=False):
                self.send_response(code)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                if cut:
                    self.send_header("Connection", "close")
                self.end_headers()
                if head:
                    return
                if server.slow:
                    time.sleep(server.slow)
                self.wfile.write(body[: len(body) // 2] if cut else body)
                if cut:
                    self.wfile.flush()
                    self.close_connection = True

            def _route(self, head):
                parts = urllib.parse.urlsplit(self.path)
                path, query = parts.path, urllib.parse.parse_qs(parts.query)
                if not head:
                    server.gets[path] += 1
                if path in server.files:
                    kind = [("Content-Type", "text/html")] if path in server.html else []
                    return self._send(200, server.files[path], kind, head=head, cut=path in server.cut)
                if path == "/drive/download" and query.get("id", [""])[0] in server.drive:
                    name, body = server.drive[query["id"][0]]
                    if query.get("confirm") == ["t"] and query.get("uuid") == ["u-1"]:
                        return self._send(200, body, [("Content-Type", "application/octet-stream"),
                                                      ("Content-Disposition", f'attachment; filename="{name}"')], head)
                    page = ('<html><body>Google Drive can\'t scan this file for viruses.'
                            f'<form id="download-form" action="{server.url}/drive/download" method="get">'
                            f'<input type="hidden" name="id" value="{query["id"][0]}">'
                            '<input type="hidden" name="export" value="download">'
                            '<input type="hidden" name="confirm" value="t">'
                            '<input type="hidden" name="uuid" value="u-1"></form></body></html>').encode()
                    return self._send(200, page, [("Content-Type", "text/html; charset=utf-8")], head)
                if path.startswith("/api/models/"):
                    return self._api(path[len("/api/models/"):], head)
                if "/resolve/" in path:
                    repo, _, rest = path.strip("/").partition("/resolve/")
                    _revision, _, filename = rest.partition("/")
                    body = server.hub.get((repo, filename))
                    if body is not None:
                        etag = hashlib.sha256(body).hexdigest()
                        if (repo, filename) in server.corrupt:
                            body = body[:-1] + bytes([body[-1] ^ 1])
                        return self._send(200, body, [("X-Repo-Commit", server.commit),
                                                      ("ETag", f'"{etag}"')], head)
                    return self._send(404, b"", [("X-Error-Code", "EntryNotFound")], head)
                return self._send(404, b"not found", head=head)

            def _api(self, rest, head):
                """``<repo>/revision/<rev>`` (repo_info) and ``<repo>/tree/<rev>`` (list_repo_tree)."""
                for route in ("/revision/", "/tree/"):
                    repo, found, _revision = rest.partition(route)
                    if found:
                        break
                names = sorted(name for (r, name) in server.hub if r == repo)
                if not found or not names:
                    return self._send(404, b"", [("X-Error-Code", "RepoNotFound")], head)
                if route == "/revision/":
                    info = {"id": repo, "sha": server.commit, "siblings": [{"rfilename": n} for n in names]}
                else:  # one page, so no Link header; weights are LFS files as on the hub
                    info = []
                    for name in names:
                        body = server.hub[(repo, name)]
                        entry = {"type": "file", "path": name, "size": len(body),
                                 "oid": hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()}
                        if not name.endswith(".json"):
                            entry["lfs"] = {"oid": hashlib.sha256(body).hexdigest(), "size": len(body),
                                            "pointerSize": 134}
                        info.append(entry)
                return self._send(200, json.dumps(info).encode(), [("Content-Type", "application/json")], head)

            def do_GET(self):
                self._route(head=False)

            def do_HEAD(self):
                self._route(head=True)

        return Handler

"""Webhook registration: GitHub's and GitLab's request shapes against a local HTTP server that records every
request and keeps hooks the way those APIs return them (neither SCM is reachable here; Gitea is tested for
real in tests/integration/test_webhooks.py)."""

# pylint: disable=disallowed-name  # "_" for values a test unpacks and ignores

import base64
import http.server
import json
import threading

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.source.scm_webhooks import (
    ScmApi, default_api_url, ensure_webhook, hook_url, secret_id)

SECRET = "hook-secret-0123456789"
TOKEN = "ghp_tokenvalue0123456789"
LISTENER = "https://eda.example.com/hooks"


class RecordingScm(http.server.ThreadingHTTPServer):
    """Serves GET/POST/PATCH/PUT/DELETE on <prefix>/hooks[/<id>] and records (method, path, headers, body)."""

    def __init__(self, scm):
        super().__init__(("127.0.0.1", 0), Handler)
        self.scm, self.requests, self.hooks, self.next_id = scm, [], {}, 1

    def shown(self, hook):
        # Neither API ever returns the secret: GitHub masks it, GitLab omits the token.
        hook = json.loads(json.dumps(hook))
        if self.scm == "github":
            if "secret" in hook.get("config", {}):
                hook["config"]["secret"] = "********"
        else:
            hook.pop("token", None)
        return hook


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, status, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        server.requests.append((self.command, self.path, self.headers, body))
        expected = {"github": "Bearer " + TOKEN, "gitlab": TOKEN}[server.scm]
        given = self.headers.get("Authorization") if server.scm == "github" else self.headers.get("PRIVATE-TOKEN")
        if given != expected:
            return self._reply(401, {"message": "Bad credentials"})
        head, _, tail = self.path.rpartition("/hooks")
        if self.command == "GET" and tail == "":
            return self._reply(200, [server.shown(h) for h in server.hooks.values()])
        if self.command == "POST" and tail == "":
            hook = dict(body, id=server.next_id)
            if server.scm == "github":
                hook.setdefault("name", "web")
            server.hooks[server.next_id] = hook
            server.next_id += 1
            return self._reply(201, server.shown(hook))
        hook_id = int(tail.strip("/"))
        if hook_id not in server.hooks:
            return self._reply(404, {"message": "Not Found"})
        if self.command in ("PATCH", "PUT"):
            server.hooks[hook_id].update(body)
            return self._reply(200, server.shown(server.hooks[hook_id]))
        if self.command == "DELETE":
            del server.hooks[hook_id]
            return self._reply(204)
        return self._reply(405, {"message": "no"})

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


@pytest.fixture(params=["github", "gitlab"])
def scm(request):
    server = RecordingScm(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.api_url = "http://127.0.0.1:%d/api" % server.server_address[1]
    yield server
    server.shutdown()
    server.server_close()


def api(scm, **kwargs):
    return ScmApi(scm.scm, scm.api_url, token=kwargs.pop("token", TOKEN), **kwargs)


def test_create_then_unchanged_then_secret_rotation_then_delete(scm):
    repo = "https://%s.example/team/app.git" % scm.scm
    first = ensure_webhook(api(scm), repo, LISTENER, SECRET)
    assert (first["changed"], first["action"], first["hook_id"]) == (True, "created", 1)
    method, path, headers, body = scm.requests[-1]
    assert method == "POST"
    if scm.scm == "github":
        assert path == "/api/repos/team/app/hooks"
        assert headers["Accept"] == "application/vnd.github+json" and headers["X-GitHub-Api-Version"] == "2022-11-28"
        assert body == {"active": True, "events": ["push"],
                        "config": {"url": hook_url(LISTENER, SECRET), "content_type": "json", "secret": SECRET,
                                   "insecure_ssl": "0"}}
    else:
        assert path == "/api/projects/team%2Fapp/hooks"
        assert body == {"url": hook_url(LISTENER, SECRET), "token": SECRET, "push_events": True,
                        "tag_push_events": True, "merge_requests_events": False, "enable_ssl_verification": True}

    again = ensure_webhook(api(scm), repo, LISTENER, SECRET)
    assert (again["changed"], again["action"]) == (False, "unchanged")
    assert [r[0] for r in scm.requests] == ["GET", "POST", "GET"]

    rotated = ensure_webhook(api(scm), repo, LISTENER, "a-new-secret-value")
    assert (rotated["changed"], rotated["action"], rotated["differences"]) == (True, "updated", ["url"])
    method, path, _headers, body = scm.requests[-1]
    assert method == ("PATCH" if scm.scm == "github" else "PUT") and path.endswith("/hooks/1")
    assert (body["config"]["secret"] if scm.scm == "github" else body["token"]) == "a-new-secret-value"
    assert len(scm.hooks) == 1

    check = ensure_webhook(api(scm), repo, LISTENER, "a-new-secret-value", state="absent", check_mode=True)
    assert (check["changed"], len(scm.hooks)) == (True, 1)
    gone = ensure_webhook(api(scm), repo, LISTENER, "a-new-secret-value", state="absent")
    assert (gone["changed"], gone["action"], scm.hooks) == (True, "deleted", {})
    assert ensure_webhook(api(scm), repo, LISTENER, SECRET, state="absent")["action"] == "absent"


def test_a_hand_edited_hook_is_put_back_and_duplicates_removed(scm):
    repo = "git@%s.example:team/app.git" % scm.scm
    ensure_webhook(api(scm), repo, LISTENER, SECRET)
    ensure_webhook(api(scm), repo, LISTENER, SECRET)
    assert len(scm.hooks) == 1
    # Someone turns push events off and adds a second hook to the same listener.
    if scm.scm == "github":
        scm.hooks[1]["events"] = ["issues"]
    else:
        scm.hooks[1]["push_events"] = False
    scm.hooks[7] = dict(json.loads(json.dumps(scm.hooks[1])), id=7)
    result = ensure_webhook(api(scm), repo, LISTENER, SECRET)
    assert result["action"] == "updated" and "duplicates" in result["differences"]
    assert list(scm.hooks) == [1]
    assert ensure_webhook(api(scm), repo, LISTENER, SECRET)["action"] == "unchanged"


def test_other_hooks_are_left_alone(scm):
    if scm.scm == "github":
        scm.hooks[3] = {"id": 3, "active": True, "events": ["push"], "config": {"url": "https://ci.example/hook"}}
    else:
        scm.hooks[3] = {"id": 3, "url": "https://ci.example/hook", "push_events": True}
    ensure_webhook(api(scm), "https://x.example/team/app", LISTENER, SECRET)
    ensure_webhook(api(scm), "https://x.example/team/app", LISTENER, SECRET, state="absent")
    assert list(scm.hooks) == [3]


def test_rejected_credentials_name_the_fix_and_never_show_the_token(scm):
    with pytest.raises(FederationError) as raised:
        ensure_webhook(api(scm, token="wrong-token-value"), "https://x.example/team/app", LISTENER, SECRET)
    assert "HTTP 401" in raised.value.msg and "federated secret" in raised.value.msg
    assert "wrong-token-value" not in raised.value.msg and SECRET not in raised.value.msg


def test_basic_auth_and_missing_credentials():
    github = ScmApi("github", "https://ghe.example/api/v3", username="bot", password="pw")
    assert github.headers["Authorization"] == "Basic " + base64.b64encode(b"bot:pw").decode()
    assert ScmApi("gitlab", "https://gitlab.example/api/v4", username="bot", password="glpat-x").headers[
        "PRIVATE-TOKEN"] == "glpat-x"
    with pytest.raises(FederationError, match="no credentials"):
        ScmApi("gitlab", "https://gitlab.example/api/v4", username="bot")
    with pytest.raises(FederationError, match="no webhook API support"):
        ScmApi("bitbucket", "https://x", token="t")


@pytest.mark.parametrize("scm_name,url,expected", [
    ("github", "https://github.com/a/b.git", "https://api.github.com"),
    ("github", "git@github.com:a/b.git", "https://api.github.com"),
    ("github", "https://ghe.example/a/b", "https://ghe.example/api/v3"),
    ("gitlab", "https://gitlab.example/group/sub/b.git", "https://gitlab.example/api/v4"),
    ("gitea", "http://127.0.0.1:3000/a/b.git", "http://127.0.0.1:3000/api/v1"),
])
def test_default_api_url(scm_name, url, expected):
    assert default_api_url(scm_name, url) == expected


def test_ssh_url_needs_api_url():
    with pytest.raises(FederationError, match="set api_url"):
        default_api_url("gitea", "ssh://git@gitea.example:2222/a/b.git")


def test_secret_id_is_stable_and_does_not_contain_the_secret():
    assert secret_id(SECRET) == secret_id(SECRET) != secret_id(SECRET + "x")
    assert SECRET not in hook_url(LISTENER, SECRET)
    assert hook_url(LISTENER + "?gitops-secret-id=old", SECRET).count("?") == 1

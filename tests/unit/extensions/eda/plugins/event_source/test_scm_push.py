"""The scm_push event source, driven directly with asyncio over real loopback HTTP(S) (no rulebook engine)."""

# pylint: disable=disallowed-name  # "_" for values a test unpacks and ignores

import asyncio
import datetime
import hashlib
import hmac
import importlib.util
import json
import logging
import os
import socket
import ssl

import aiohttp
import pytest

from ansible_collections.gitops.federation.plugins.module_utils.federation import push_match

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))))
PLUGIN = os.path.join(ROOT, "extensions", "eda", "plugins", "event_source", "scm_push.py")
SECRET = "s3cr3t-webhook-value-0123456789"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def load_plugin():
    spec = importlib.util.spec_from_file_location("scm_push_under_test", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scm_push = load_plugin()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def github_payload(ref="refs/heads/main", after=COMMIT):
    return {"ref": ref, "before": "f" * 40, "after": after,
            "repository": {"clone_url": "https://github.example/Team/App.git", "ssh_url": "git@github.example:Team/App.git",
                           "html_url": "https://github.example/Team/App", "default_branch": "main"}}


def gitlab_payload(kind="push", ref="refs/heads/main", after=COMMIT):
    return {"object_kind": kind, "ref": ref, "before": "0" * 40, "after": after, "checkout_sha": after,
            "project": {"git_http_url": "https://gitlab.example/team/app.git",
                        "git_ssh_url": "ssh://git@gitlab.example:2222/team/app.git",
                        "web_url": "https://gitlab.example/team/app", "default_branch": "main"}}


def sign(body, secret=SECRET):
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Server:
    """The plugin's main() running as a task on this loop; requests over loopback."""

    def __init__(self, args, scheme="http", ssl_context=None):
        self.args, self.scheme, self.ssl_context = args, scheme, ssl_context
        self.queue = asyncio.Queue()

    async def __aenter__(self):
        self.port = self.args.setdefault("port", free_port())
        self.task = asyncio.ensure_future(scm_push.main(self.queue, self.args))
        self.session = aiohttp.ClientSession()
        for _ in range(200):
            if self.task.done():
                self.task.result()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    break
            except OSError:
                await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc):
        await self.session.close()
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    async def post(self, body, headers=None, content_type="application/json", path="/", method="POST"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = {"Content-Type": content_type}
        all_headers.update(headers or {})
        async with self.session.request(method, "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path), data=data,
                                        headers=all_headers, ssl=self.ssl_context) as response:
            return response.status, await response.json(content_type=None)

    def events(self):
        found = []
        while not self.queue.empty():
            found.append(self.queue.get_nowait())
        return found


def github_headers(body, event="push", signature=None):
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": signature if signature is not None else "sha256=" + sign(body)}


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", SECRET)


def run(coroutine):
    return asyncio.run(coroutine)


def test_github_push_becomes_one_event(secret_env, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with Server({}) as server:
            body = json.dumps(github_payload()).encode()
            status, answer = await server.post(body, github_headers(body))
            return status, answer, server.events()

    status, answer, events = run(scenario())
    assert status == 202 and answer["commit"] == COMMIT
    assert len(events) == 1
    push = events[0]["gitops_push"]
    assert push["scm"] == "github" and push["delivery"] == "d-1"
    assert push["ref"] == "refs/heads/main" and push["branch"] == "main" and push["tag"] is None
    assert push["commit"] == COMMIT and push["default_branch"] == "main"
    assert push["repository"]["keys"] == ["github.example/team/app"]
    assert push["repository"]["https"] == "https://github.example/Team/App.git"
    assert push["repository"]["ssh"] == "git@github.example:Team/App.git"
    assert isinstance(push["received_at"], float)
    assert SECRET not in caplog.text


def test_gitea_and_gitlab_and_generic_schemes(secret_env):
    async def scenario():
        async with Server({}) as server:
            results = []
            body = json.dumps(github_payload(ref="refs/tags/v1.2.0")).encode()
            # Gitea sends GitHub's headers too, with a signature the listener must not rely on.
            results.append(await server.post(body, {"X-Gitea-Event": "push", "X-Gitea-Delivery": "g-1",
                                                    "X-GitHub-Event": "push", "X-Gitea-Signature": sign(body)}))
            body = json.dumps(gitlab_payload(kind="tag_push", ref="refs/tags/v2.0.0")).encode()
            results.append(await server.post(body, {"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": SECRET,
                                                    "X-Gitlab-Event-UUID": "l-1"}))
            body = json.dumps({"repository": "https://git.example/a/b", "ref": "refs/heads/dev",
                               "after": COMMIT}).encode()
            results.append(await server.post(body, {"X-Gitops-Signature-256": "sha256=" + sign(body),
                                                    "X-Gitops-Delivery": "x-1"}))
            return results, server.events()

    results, events = run(scenario())
    assert [status for status, _ in results] == [202, 202, 202]
    gitea, gitlab, generic = [e["gitops_push"] for e in events]
    assert (gitea["scm"], gitea["tag"], gitea["delivery"]) == ("gitea", "v1.2.0", "g-1")
    assert (gitlab["scm"], gitlab["tag"], gitlab["delivery"]) == ("gitlab", "v2.0.0", "l-1")
    assert gitlab["repository"]["keys"] == ["gitlab.example/team/app"]
    assert gitlab["repository"]["ssh"] == "ssh://git@gitlab.example:2222/team/app.git"
    assert (generic["scm"], generic["branch"], generic["repository"]["keys"]) == ("generic", "dev", ["git.example/a/b"])


@pytest.mark.parametrize("headers", [
    {"X-GitHub-Event": "push"},  # missing
    {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64},  # wrong
    {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha1=abc"},  # wrong scheme
    {"X-Gitea-Event": "push", "X-Hub-Signature-256": "GOOD"},  # Gitea must sign with X-Gitea-Signature
    {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "not-the-secret"},
    {"X-Gitlab-Event": "Push Hook"},
    {},  # generic, unsigned
])
def test_missing_or_wrong_signature_is_401_without_event(secret_env, headers, caplog):
    async def scenario():
        async with Server({}) as server:
            body = json.dumps(github_payload()).encode()
            given = dict((k, "sha256=" + sign(body) if v == "GOOD" else v) for k, v in headers.items())
            status, _ = await server.post(body, given)
            return status, server.events()

    status, events = run(scenario())
    assert status == 401 and events == []
    assert SECRET not in caplog.text


def test_signature_by_another_secret_is_refused(secret_env):
    async def scenario():
        async with Server({}) as server:
            body = json.dumps(github_payload()).encode()
            status, _ = await server.post(body, github_headers(body, signature="sha256=" + sign(body, "other")))
            return status, server.events()

    assert run(scenario()) == (401, [])


def test_scheme_not_allowed_is_refused(secret_env):
    async def scenario():
        async with Server({"scms": ["github"]}) as server:
            body = json.dumps(gitlab_payload()).encode()
            status, _ = await server.post(body, {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET})
            return status, server.events()

    assert run(scenario()) == (401, [])


def test_refusals_ping_and_deletions(secret_env):
    async def scenario():
        async with Server({"max_body_bytes": 4096}) as server:
            answers = {}
            good = json.dumps(github_payload()).encode()
            answers["content type"] = await server.post(good, github_headers(good), content_type="text/plain")
            answers["form"] = await server.post(b"payload=%7B%7D", github_headers(b"payload=%7B%7D"),
                                                content_type="application/x-www-form-urlencoded")
            big = json.dumps(dict(github_payload(), padding="x" * 5000)).encode()
            answers["too large"] = await server.post(big, github_headers(big))
            bad = b'{"ref": "refs/heads/main",'
            answers["malformed signed"] = await server.post(bad, github_headers(bad))
            answers["malformed unsigned"] = await server.post(bad, {"X-GitHub-Event": "push"})
            not_object = b"[1, 2]"
            answers["not an object"] = await server.post(not_object, github_headers(not_object))
            no_commit = json.dumps(dict(github_payload(), after="nope")).encode()
            answers["no commit"] = await server.post(no_commit, github_headers(no_commit))
            ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
            answers["ping"] = await server.post(ping, github_headers(ping, event="ping"))
            deleted = json.dumps(github_payload(after="0" * 40)).encode()
            answers["deleted"] = await server.post(deleted, github_headers(deleted))
            issue = json.dumps({"action": "opened"}).encode()
            answers["other event"] = await server.post(issue, github_headers(issue, event="issues"))
            answers["other path"] = await server.post(good, github_headers(good), path="/elsewhere")
            answers["GET"] = await server.post(b"", {}, method="GET")
            return dict((k, v[0]) for k, v in answers.items()), answers["ping"][1], server.events()

    statuses, ping, events = run(scenario())
    assert statuses == {"content type": 415, "form": 415, "too large": 413, "malformed signed": 400,
                        "malformed unsigned": 401, "not an object": 400, "no commit": 400, "ping": 200,
                        "deleted": 200, "other event": 200, "other path": 404, "GET": 405}
    assert ping["message"] == "pong"
    assert events == []


def test_survives_1000_malformed_requests_then_serves_a_good_one(secret_env):
    async def scenario():
        async with Server({}) as server:
            statuses = set()
            for number in range(1000):
                body = b'{"ref": %d' % number
                kind = number % 4
                if kind == 0:
                    statuses.add((await server.post(body, github_headers(body)))[0])
                elif kind == 1:
                    statuses.add((await server.post(body, {"X-GitHub-Event": "push"}))[0])
                elif kind == 2:
                    statuses.add((await server.post(body, github_headers(body), content_type="text/xml"))[0])
                else:
                    statuses.add((await server.post(b"\xff\xfe" + body, github_headers(b"\xff\xfe" + body)))[0])
            body = json.dumps(github_payload()).encode()
            good = await server.post(body, github_headers(body))
            return statuses, good[0], server.events()

    statuses, good, events = run(scenario())
    assert statuses == {400, 401, 415}
    assert good == 202 and len(events) == 1


def test_tls_when_given_a_certificate(secret_env, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    client = ssl.create_default_context(cafile=str(tmp_path / "tls.crt"))

    async def scenario():
        args = {"certfile": str(tmp_path / "tls.crt"), "keyfile": str(tmp_path / "tls.key")}
        async with Server(args, scheme="https", ssl_context=client) as server:
            body = json.dumps(github_payload()).encode()
            status, _ = await server.post(body, github_headers(body))
            plain = None
            try:
                async with server.session.post("http://127.0.0.1:%d/" % server.port, data=body) as response:
                    plain = response.status
            except aiohttp.ClientError:
                plain = "refused"
            return status, plain, server.events()

    status, plain, events = run(scenario())
    assert status == 202 and len(events) == 1
    assert plain != 202


def test_secret_from_file_and_never_inline(tmp_path, monkeypatch):
    monkeypatch.delenv("GITOPS_WEBHOOK_SECRET", raising=False)
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    assert scm_push.read_secret({"secret_file": str(path)}) == SECRET.encode()
    assert scm_push.read_secret({"secret_env": "MY_HOOK"}, {"MY_HOOK": SECRET}) == SECRET.encode()
    with pytest.raises(scm_push.ConfigError, match="do not put the webhook secret in the rulebook"):
        scm_push.read_secret({"secret": SECRET})
    with pytest.raises(scm_push.ConfigError, match="GITOPS_WEBHOOK_SECRET") as raised:
        scm_push.read_secret({})
    with pytest.raises(scm_push.ConfigError, match="cannot read secret_file"):
        scm_push.read_secret({"secret_file": str(tmp_path / "missing")})
    path.write_text("\n")
    with pytest.raises(scm_push.ConfigError, match="empty or missing"):
        scm_push.read_secret({"secret_file": str(path)})
    assert SECRET not in str(raised.value)


def test_bad_arguments_fail_at_start(secret_env):
    with pytest.raises(scm_push.ConfigError, match="unknown scms bitbucket"):
        scm_push.Listener(asyncio.Queue(), {"scms": ["bitbucket"]})
    with pytest.raises(scm_push.ConfigError, match="keyfile given without certfile"):
        scm_push.Listener(asyncio.Queue(), {"keyfile": "/x"})


URLS = [
    ("https://github.com/Team/App.git", "github.com/team/app"),
    ("https://user:pw@github.com:443/Team/App/", "github.com/team/app"),
    ("git@github.com:Team/App.git", "github.com/team/app"),
    ("ssh://git@github.com:22/Team/App.git", "github.com/team/app"),
    ("http://127.0.0.1:3000/gitops/podinfo.git", "127.0.0.1/gitops/podinfo"),
    ("ssh://git@127.0.0.1:2222/gitops/podinfo.git", "127.0.0.1/gitops/podinfo"),
    ("https://gitlab.example/group/sub/project", "gitlab.example/group/sub/project"),
    ("", None), ("not a url", None), ("https://host/", None), (None, None),
]


@pytest.mark.parametrize("url,key", URLS)
def test_url_normalisation_agrees_with_the_matching_code(url, key):
    assert scm_push.normalise_url(url) == key
    assert push_match.normalise_url(url) == key

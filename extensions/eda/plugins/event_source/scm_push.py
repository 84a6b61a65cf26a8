# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scm_push: an HTTP listener that turns signed SCM push webhooks into ansible-rulebook events."""

DOCUMENTATION = r'''
---
short_description: Receive signed push webhooks from GitHub, GitLab, Gitea or a generic HMAC sender.
description:
  - An HTTP(S) listener. Each request must prove it knows the webhook secret, by the scheme of the SCM that
    sent it (chosen from its event header): GitHub C(X-Hub-Signature-256: sha256=<hex>) and Gitea
    C(X-Gitea-Signature: <hex>), HMAC-SHA256 of the raw body; GitLab C(X-Gitlab-Token), the secret itself,
    compared in constant time; generic C(X-Gitops-Signature-256: sha256=<hex>), HMAC-SHA256 of the raw body.
  - A request with a missing or wrong signature gets 401 and produces no event. Bodies over I(max_body_bytes)
    get 413, a content type other than JSON 415, malformed JSON 400. Ping events are answered (200) and
    produce no event; so are branch and tag deletions.
  - Each accepted push becomes one event C({"gitops_push": {...}}) with the SCM, the delivery id, the ref
    (C(refs/heads/main)), the branch or tag, the pushed commit, the repository's URLs and their normalised
    forms (C(host/owner/repo), the same for the https and ssh URL of a repository) and the time it arrived.
  - The secret is read from a file or an environment variable, never from the rulebook or the command line,
    and never logged.
options:
  host:
    description: Address to listen on.
    default: 127.0.0.1
  port:
    description: Port to listen on.
    default: 5000
  path:
    description: URL path the webhooks are posted to; other paths get 404.
    default: /
  secret_file:
    description: File holding the webhook secret (surrounding whitespace ignored).
  secret_env:
    description: Environment variable holding the webhook secret, used when I(secret_file) is not given.
    default: GITOPS_WEBHOOK_SECRET
  scms:
    description: The sender schemes accepted; a request in another scheme gets 401.
    default: [github, gitlab, gitea, generic]
  max_body_bytes:
    description: Largest request body accepted.
    default: 1048576
  certfile:
    description: PEM certificate (chain) to serve HTTPS with; plain HTTP when not given.
  keyfile:
    description: PEM private key of I(certfile).
'''

EXAMPLES = r'''
- name: Sync on push
  hosts: all
  sources:
    - gitops.federation.scm_push:
        host: 0.0.0.0
        port: 5000
        secret_file: /etc/gitops/webhook-secret
        certfile: /etc/gitops/tls.crt
        keyfile: /etc/gitops/tls.key
  rules:
    - name: Print the push
      condition: event.gitops_push is defined
      action:
        debug:
'''

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import ssl
import time
from urllib.parse import urlsplit

from aiohttp import web

LOGGER = logging.getLogger("gitops.federation.scm_push")
SCMS = ("github", "gitlab", "gitea", "generic")
DEFAULT_MAX_BODY = 1024 * 1024
ZERO_COMMIT_RE = re.compile(r"^0+$")
_SCP_LIKE_RE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>(?!//).+)$")


class ConfigError(ValueError):
    """A wrong plugin argument; the message names it."""


def normalise_url(url):
    """``host/owner/repo`` for a repository URL in any of its forms (https, ssh://, scp-like ``git@host:path``):
    lower case, without scheme, user, password, port, ``.git`` suffix and trailing slash. None if unreadable.

    Ports are dropped because one repository's https and ssh URLs use different ports. The collection's
    matching code (plugins/module_utils/federation/push_match.py) normalises the sources' URLs the same way.
    """
    if not isinstance(url, str) or not url.strip():
        return None
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        host, path = parts.hostname, parts.path
    else:
        match = _SCP_LIKE_RE.match(url)
        if not match:
            return None
        host, path = match.group("host"), match.group("path")
    if not host:
        return None
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    path = path.strip("/")
    if not path:
        return None
    return ("%s/%s" % (host, path)).lower()


def read_secret(args, environ=None):
    """The webhook secret from ``secret_file`` or the environment variable named by ``secret_env``."""
    environ = os.environ if environ is None else environ
    for inline in ("secret", "token", "webhook_secret"):
        if inline in args:
            raise ConfigError("scm_push: do not put the webhook secret in the rulebook (%s); give secret_file or "
                              "secret_env" % inline)
    if args.get("secret_file"):
        try:
            with open(args["secret_file"], "r") as handle:
                secret = handle.read().strip()
        except OSError as err:
            raise ConfigError("scm_push: cannot read secret_file %s: %s" % (args["secret_file"], err.strerror))
        where = "secret_file %s" % args["secret_file"]
    else:
        name = args.get("secret_env") or "GITOPS_WEBHOOK_SECRET"
        secret = (environ.get(name) or "").strip()
        where = "environment variable %s (secret_env)" % name
    if not secret:
        raise ConfigError("scm_push: the webhook secret is empty or missing: set %s" % where)
    return secret.encode("utf-8")


def _hmac_hex(secret, body):
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _equal(given, expected):
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def sender_of(headers):
    """(scm, event name, delivery id) from the request headers. Gitea also sends GitHub's headers, so it is
    recognised first; a request with no known event header is a generic one."""
    if "X-Gitea-Event" in headers:
        return "gitea", headers.get("X-Gitea-Event", ""), headers.get("X-Gitea-Delivery", "")
    if "X-Gitlab-Event" in headers:
        return ("gitlab", headers.get("X-Gitlab-Event", ""),
                headers.get("X-Gitlab-Event-UUID") or headers.get("X-Gitlab-Webhook-UUID", ""))
    if "X-GitHub-Event" in headers:
        return "github", headers.get("X-GitHub-Event", ""), headers.get("X-GitHub-Delivery", "")
    return "generic", headers.get("X-Gitops-Event", "push"), headers.get("X-Gitops-Delivery", "")


def signature_valid(scm, headers, body, secret):
    """Whether the request proves knowledge of the secret in the scheme of its SCM."""
    if scm == "gitlab":
        token = headers.get("X-Gitlab-Token")
        return token is not None and _equal(token, secret.decode("utf-8"))
    if scm == "gitea":
        given = headers.get("X-Gitea-Signature")
        return given is not None and _equal(given.strip().lower(), _hmac_hex(secret, body))
    header = "X-Hub-Signature-256" if scm == "github" else "X-Gitops-Signature-256"
    given = headers.get(header)
    if given is None or not given.startswith("sha256="):
        return False
    return _equal(given[len("sha256="):].strip().lower(), _hmac_hex(secret, body))


def _is_ping(scm, event, payload):
    if scm in ("github", "gitea", "generic"):
        return event.lower() == "ping"
    return False


def push_of(scm, event, payload):
    """The push a payload describes: (ref, commit, before, urls, default_branch), or None if it is no push.
    Raises ValueError on a push payload without a ref, a commit or a repository URL."""
    if not isinstance(payload, dict):
        raise ValueError("the body is not a JSON object")
    if scm == "gitlab":
        if payload.get("object_kind") not in ("push", "tag_push"):
            return None
        project = payload.get("project") or {}
        repository = payload.get("repository") or {}
        urls = [project.get("git_http_url"), project.get("git_ssh_url"), project.get("web_url"),
                repository.get("git_http_url"), repository.get("git_ssh_url"), repository.get("homepage")]
        default_branch = project.get("default_branch")
    else:
        if scm != "generic" and event.lower() != "push":
            return None
        repository = payload.get("repository")
        if isinstance(repository, str):
            repository = {"url": repository}
        repository = repository or {}
        urls = [repository.get(key) for key in ("clone_url", "ssh_url", "html_url", "git_url", "url")]
        default_branch = repository.get("default_branch")
    ref = payload.get("ref")
    commit = payload.get("after") or payload.get("checkout_sha") or payload.get("commit")
    urls = [u for u in dict.fromkeys(urls) if isinstance(u, str) and u and not u.startswith("https://api.")]
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise ValueError("push payload has no ref (refs/heads/... or refs/tags/...)")
    if not isinstance(commit, str) or not re.match(r"^[0-9a-fA-F]{7,64}$", commit):
        raise ValueError("push payload has no commit ('after')")
    if not urls:
        raise ValueError("push payload has no repository URL")
    return ref, commit.lower(), payload.get("before"), urls, default_branch


def make_event(scm, delivery, ref, commit, before, urls, default_branch, received_at):
    branch = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None
    tag = ref[len("refs/tags/"):] if ref.startswith("refs/tags/") else None
    keys = [k for k in dict.fromkeys(normalise_url(u) for u in urls) if k]
    https = next((u for u in urls if u.startswith(("https://", "http://"))), None)
    ssh = next((u for u in urls if u.startswith("ssh://") or _SCP_LIKE_RE.match(u) and "://" not in u), None)
    return {"gitops_push": {
        "scm": scm, "delivery": delivery or None, "ref": ref, "branch": branch, "tag": tag,
        "commit": commit, "before": before, "default_branch": default_branch,
        "repository": {"urls": urls, "https": https, "ssh": ssh, "keys": keys},
        "received_at": received_at,
    }}


class Listener:
    """The aiohttp application: one handler that checks, parses and queues."""

    def __init__(self, queue, args):
        self.queue = queue
        self.secret = read_secret(args)
        self.path = args.get("path") or "/"
        self.scms = tuple(args.get("scms") or SCMS)
        unknown = sorted(set(self.scms) - set(SCMS))
        if unknown:
            raise ConfigError("scm_push: unknown scms %s; choose from %s" % (", ".join(unknown), ", ".join(SCMS)))
        try:
            self.max_body = int(args.get("max_body_bytes") or DEFAULT_MAX_BODY)
        except (TypeError, ValueError):
            raise ConfigError("scm_push: max_body_bytes must be a number of bytes")
        self.host = args.get("host") or "127.0.0.1"
        self.port = int(args.get("port") or 5000)
        self.ssl_context = None
        if args.get("certfile"):
            self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                self.ssl_context.load_cert_chain(args["certfile"], args.get("keyfile"))
            except (OSError, ssl.SSLError) as err:
                raise ConfigError("scm_push: cannot load certfile/keyfile %s: %s" % (args["certfile"], err))
        elif args.get("keyfile"):
            raise ConfigError("scm_push: keyfile given without certfile")

    def application(self):
        # aiohttp refuses larger bodies itself (413); the Content-Length check below answers before reading.
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    @staticmethod
    def _answer(status, message, **extra):
        body = dict(extra, message=message)
        return web.json_response(body, status=status)

    async def handle(self, request):
        if request.path != self.path:
            return self._answer(404, "not found: post webhooks to %s" % self.path)
        if request.method != "POST":
            return self._answer(405, "use POST")
        if request.content_length is not None and request.content_length > self.max_body:
            return self._answer(413, "body larger than %d bytes" % self.max_body)
        if request.content_type != "application/json":
            return self._answer(415, "content type must be application/json (set it in the webhook settings)")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._answer(413, "body larger than %d bytes" % self.max_body)
        scm, event, delivery = sender_of(request.headers)
        if scm not in self.scms or not signature_valid(scm, request.headers, body, self.secret):
            LOGGER.warning("refused %s webhook %s from %s: missing or wrong signature", scm, delivery or "-",
                           request.remote)
            return self._answer(401, "missing or wrong signature")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._answer(400, "body is not valid JSON")
        if _is_ping(scm, event, payload):
            LOGGER.info("answered %s ping %s", scm, delivery or "-")
            return self._answer(200, "pong")
        try:
            push = push_of(scm, event, payload)
        except ValueError as err:
            return self._answer(400, str(err))
        if push is None:
            return self._answer(200, "ignored: %s event is not a push" % (event or "this"))
        ref, commit, before, urls, default_branch = push
        if ZERO_COMMIT_RE.match(commit):
            return self._answer(200, "ignored: %s was deleted" % ref)
        data = make_event(scm, delivery, ref, commit, before, urls, default_branch, time.time())
        await self.queue.put(data)
        LOGGER.info("queued %s push %s: %s %s at %s", scm, delivery or "-", urls[0], ref, commit)
        return self._answer(202, "queued", commit=commit, ref=ref)


async def main(queue, args):
    """ansible-rulebook entry point: serve until cancelled."""
    listener = Listener(queue, args or {})
    runner = web.AppRunner(listener.application(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, listener.host, listener.port, ssl_context=listener.ssl_context)
    await site.start()
    LOGGER.info("scm_push listening on %s://%s:%d%s", "https" if listener.ssl_context else "http",
                listener.host, listener.port, listener.path)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    # Manual run: python scm_push.py (secret in GITOPS_WEBHOOK_SECRET); events are printed.
    class _Print:
        async def put(self, event):
            print(json.dumps(event), flush=True)

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(_Print(), {"port": int(os.environ.get("PORT", "5000"))}))

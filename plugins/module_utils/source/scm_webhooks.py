# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Push webhooks on GitHub, GitLab and Gitea repositories, through their REST APIs, idempotently.

A hook is ours when its URL, without the query string, is the listener URL. The SCMs never return a hook's
secret, so the URL carries a secret id (``?gitops-secret-id=<16 hex>``: an HMAC of a constant under the secret,
which tells nothing a signed delivery does not) and a rotated secret shows as a changed URL; the listener
ignores the query string. Credentials go in request headers only, never in URLs, messages or results.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import hmac
import json
import re

try:
    from urllib.parse import quote, urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    from urllib import quote
    from urlparse import urlsplit

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

SCMS = ("github", "gitlab", "gitea")
SECRET_ID_PARAM = "gitops-secret-id"
_SCP_LIKE_RE = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]+):(?P<path>(?!//).+)$")


def secret_id(secret):
    return hmac.new(secret.encode("utf-8"), b"gitops.federation webhook secret id", hashlib.sha256).hexdigest()[:16]


def hook_url(listener_url, secret):
    base = listener_url.split("?", 1)[0]
    return "%s?%s=%s" % (base, SECRET_ID_PARAM, secret_id(secret))


def _base(url):
    return (url or "").split("?", 1)[0].rstrip("/")


def repository_of(url):
    """(scheme, host[:port], owner/repo path) of a repository URL (https, ssh:// or scp-like)."""
    if "://" in url:
        parts = urlsplit(url)
        scheme, host, path = parts.scheme, parts.hostname, parts.path
        if parts.port and scheme in ("http", "https"):
            host = "%s:%d" % (host, parts.port)
    else:
        match = _SCP_LIKE_RE.match(url)
        if not match:
            raise FederationError("repository URL %r is not an https, ssh:// or user@host:path URL" % url)
        scheme, host, path = "ssh", match.group("host"), match.group("path")
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    if not host or "/" not in path:
        raise FederationError("repository URL %r does not name an owner/repository path" % url)
    return scheme, host, path


def default_api_url(scm, repository_url):
    """The REST API root for a repository URL: github.com -> api.github.com, GitHub Enterprise -> /api/v3,
    GitLab -> /api/v4, Gitea -> /api/v1. An ssh URL does not tell the web port: give api_url then."""
    scheme, host, _path = repository_of(repository_url)
    if scm == "github" and host == "github.com":
        return "https://api.github.com"
    if scheme not in ("http", "https"):
        raise FederationError("cannot tell the %s API address from the ssh URL %s: set api_url" % (scm, repository_url))
    suffix = {"github": "/api/v3", "gitlab": "/api/v4", "gitea": "/api/v1"}[scm]
    return "%s://%s%s" % (scheme, host, suffix)


class ScmApi:
    """A small REST client; auth in headers only."""

    def __init__(self, scm, api_url, token=None, username=None, password=None, validate_certs=True, ca_path=None,
                 timeout=30):
        if scm not in SCMS:
            raise FederationError("scm %r has no webhook API support here; use one of %s" % (scm, ", ".join(SCMS)))
        self.scm, self.api_url = scm, api_url.rstrip("/")
        self.validate_certs, self.ca_path, self.timeout = validate_certs, ca_path, timeout
        self.headers = {"Accept": "application/json", "Content-Type": "application/json",
                        "User-Agent": "gitops.federation"}
        if scm == "github":
            self.headers["Accept"] = "application/vnd.github+json"
            self.headers["X-GitHub-Api-Version"] = "2022-11-28"
        if scm == "gitlab" and not token and password:
            token = password  # GitLab's API takes no passwords: a git password there is an access token
        if token:
            if scm == "gitlab":
                self.headers["PRIVATE-TOKEN"] = token
            elif scm == "gitea":
                self.headers["Authorization"] = "token %s" % token
            else:
                self.headers["Authorization"] = "Bearer %s" % token
        elif username and password:
            basic = base64.b64encode(("%s:%s" % (username, password)).encode("utf-8")).decode("ascii")
            self.headers["Authorization"] = "Basic %s" % basic
        else:
            raise FederationError("%s API at %s: no credentials; the source's federated secret needs a token "
                                  "(bearerToken)%s" % (scm, self.api_url, " or an access token as password"
                                                       if scm == "gitlab" else " or username and password"))

    def request(self, method, path, body=None):
        url = self.api_url + path
        data = json.dumps(body).encode("utf-8") if body is not None else None
        try:
            response = open_url(url, method=method, data=data, headers=self.headers, validate_certs=self.validate_certs,
                                ca_path=self.ca_path, timeout=self.timeout, follow_redirects="safe",
                                force_basic_auth=False, use_proxy=True)
            text = response.read()
        except HTTPError as err:
            detail = ""
            try:
                detail = err.read().decode("utf-8", "replace")[:300]
            except Exception:  # the body is only a hint
                pass
            hint = {401: " (the token or password of the source's federated secret is not accepted)",
                    403: " (the credentials lack the right to manage webhooks: admin/maintainer on the repository)",
                    404: " (no such repository, or the credentials cannot see it)"}.get(err.code, "")
            raise FederationError("%s %s %s: HTTP %d%s %s" % (self.scm, method, url, err.code, hint, detail.strip()))
        except (URLError, OSError) as err:
            raise FederationError("%s %s %s: %s" % (self.scm, method, url, getattr(err, "reason", err)))
        return json.loads(text.decode("utf-8")) if text and text.strip() else None


def _project_path(scm, path):
    if scm == "gitlab":
        return "/projects/%s/hooks" % quote(path, safe="")
    return "/repos/%s/hooks" % "/".join(quote(p, safe="") for p in path.split("/"))


def desired_hook(scm, url, secret, validate_certs):
    """The create/update body, and the comparable view of it."""
    if scm == "gitlab":
        body = {"url": url, "token": secret, "push_events": True, "tag_push_events": True,
                "merge_requests_events": False, "enable_ssl_verification": bool(validate_certs)}
        view = {"url": url, "push_events": True, "tag_push_events": True, "merge_requests_events": False,
                "enable_ssl_verification": bool(validate_certs)}
        return body, view
    config = {"url": url, "content_type": "json", "secret": secret,
              "insecure_ssl": "0" if validate_certs else "1"}
    if scm == "github":
        body = {"active": True, "events": ["push"], "config": config}
    else:
        body = {"type": "gitea", "active": True, "events": ["push"], "config": config, "branch_filter": "*"}
    view = {"url": url, "content_type": "json", "active": True, "events": ["push"]}
    if scm == "github":
        view["insecure_ssl"] = config["insecure_ssl"]
    return body, view


def live_view(scm, hook):
    if scm == "gitlab":
        return {"url": hook.get("url"), "push_events": bool(hook.get("push_events")),
                "tag_push_events": bool(hook.get("tag_push_events")),
                "merge_requests_events": bool(hook.get("merge_requests_events")),
                "enable_ssl_verification": bool(hook.get("enable_ssl_verification"))}
    config = hook.get("config") or {}
    view = {"url": config.get("url"), "content_type": config.get("content_type"), "active": bool(hook.get("active")),
            "events": sorted(hook.get("events") or [])}
    if scm == "github":
        view["insecure_ssl"] = str(config.get("insecure_ssl", "0"))
    return view


def _hook_url_of(scm, hook):
    return hook.get("url") if scm == "gitlab" else (hook.get("config") or {}).get("url")


def ensure_webhook(api, repository_url, listener_url, secret, state="present", validate_certs=True, check_mode=False):
    """Create, update or delete the push webhook of one repository. Returns a dict:
    changed, action (created/updated/unchanged/deleted/absent), hook id, hook url (secret id included)."""
    _scheme, _host, path = repository_of(repository_url)
    hooks_path = _project_path(api.scm, path)
    hooks = api.request("GET", hooks_path) or []
    ours = [h for h in hooks if _base(_hook_url_of(api.scm, h)) == _base(listener_url)]
    url = hook_url(listener_url, secret)
    result = dict(repository=path, url=url, changed=False)
    if state == "absent":
        for hook in ours:
            if not check_mode:
                api.request("DELETE", "%s/%s" % (hooks_path, hook["id"]))
        result.update(changed=bool(ours), action="deleted" if ours else "absent",
                      hook_id=ours[0]["id"] if ours else None)
        return result
    body, view = desired_hook(api.scm, url, secret, validate_certs)
    if not ours:
        created = {} if check_mode else (api.request("POST", hooks_path, body) or {})
        result.update(changed=True, action="created", hook_id=created.get("id"))
        return result
    hook, extra = ours[0], ours[1:]
    # Duplicates (two hooks to one listener) would deliver every push twice: keep one.
    for duplicate in extra:
        if not check_mode:
            api.request("DELETE", "%s/%s" % (hooks_path, duplicate["id"]))
    live = live_view(api.scm, hook)
    if live == view and not extra:
        result.update(action="unchanged", hook_id=hook["id"])
        return result
    if live != view and not check_mode:
        method = "PUT" if api.scm == "gitlab" else "PATCH"
        api.request(method, "%s/%s" % (hooks_path, hook["id"]), body)
    result.update(changed=True, action="updated", hook_id=hook["id"],
                  differences=sorted(k for k in view if live.get(k) != view[k]) + (["duplicates"] if extra else []))
    return result

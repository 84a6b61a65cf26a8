# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which GitOps sources a push affects: same repository (any URL form) and a ref the source follows.

A push is the ``gitops_push`` mapping of an event of the ``gitops.federation.scm_push`` event source: ``ref``
(``refs/heads/main``), ``branch`` or ``tag``, ``commit``, ``default_branch`` and ``repository.keys``, the
repository's URLs normalised by ``normalise_url``. A source matches when its URL (or, with per-cluster
overrides, any cluster's URL) normalises to one of those keys and its ref follows the pushed ref:

- ``branch: X``: a push to branch X; no ref: a push to the repository's default branch;
- ``tag: X``: a push of tag X; ``semver: RANGE``: a push of a tag whose version the range accepts;
- ``commit``: never (a pinned commit does not move).

Coalescing: a sync that started after a push arrived fetched a head at least as new as that push, so the
push needs no sync of its own. The glue playbook marks a source's sync start in ``<marks dir>/<ns>/<source>``
(``mark_sync_start``); ``covered_by`` reads it back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    from urlparse import urlsplit

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.source.git_fetch import SemverRange, parse_version

# Same rule as the event source plugin (extensions/eda/plugins/event_source/scm_push.py); a unit test keeps
# the two in step.
_SCP_LIKE_RE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>(?!//).+)$")
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def normalise_url(url):
    """``host/owner/repo`` for a repository URL in any form: lower case, no scheme, user, password, port,
    ``.git`` suffix or trailing slash. None if unreadable."""
    if not isinstance(url, str) or not url.strip():
        return None
    url = url.strip()
    if "://" in url:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            return None
        path = parts.path
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


def check_push(push):
    """The push mapping, checked: raises FederationError naming the missing field."""
    if not isinstance(push, dict):
        raise FederationError("push must be the gitops_push mapping of an scm_push event, got %s"
                              % type(push).__name__)
    ref = push.get("ref")
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        raise FederationError("push.ref must be a full ref such as refs/heads/main, got %r" % (ref,))
    commit = push.get("commit")
    if not isinstance(commit, str) or not re.match(r"^[0-9a-fA-F]{7,64}$", commit):
        raise FederationError("push.commit must be a commit SHA, got %r" % (commit,))
    keys = (push.get("repository") or {}).get("keys")
    if not keys:
        urls = (push.get("repository") or {}).get("urls") or []
        keys = [k for k in (normalise_url(u) for u in urls) if k]
    if not keys:
        raise FederationError("push.repository has no URL (keys or urls)")
    branch = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None
    tag = ref[len("refs/tags/"):] if ref.startswith("refs/tags/") else None
    return dict(ref=ref, commit=commit.lower(), keys=set(keys), branch=branch, tag=tag,
                default_branch=push.get("default_branch"), received_at=push.get("received_at"))


def ref_follows(ref, push):
    """(True, why) when a source ref (branch/tag/semver/commit mapping) follows the pushed ref, else (False, why)."""
    ref = dict((k, v) for k, v in (ref or {}).items() if v not in (None, ""))
    if "commit" in ref:
        return False, "pinned to commit %s" % ref["commit"]
    if "branch" in ref:
        if push["branch"] is not None and push["branch"] == str(ref["branch"]):
            return True, "follows branch %s" % ref["branch"]
        return False, "follows branch %s" % ref["branch"]
    if "tag" in ref:
        if push["tag"] is not None and push["tag"] == str(ref["tag"]):
            return True, "follows tag %s" % ref["tag"]
        return False, "follows tag %s" % ref["tag"]
    if "semver" in ref:
        if push["tag"] is None:
            return False, "follows semver %s (a branch push)" % ref["semver"]
        version = parse_version(push["tag"])
        if version is not None and SemverRange(str(ref["semver"])).matches(version):
            return True, "tag %s satisfies semver %s" % (push["tag"], ref["semver"])
        return False, "tag %s does not satisfy semver %s" % (push["tag"], ref["semver"])
    # No ref: the remote's default branch.
    if push["branch"] is not None and push["default_branch"] and push["branch"] == push["default_branch"]:
        return True, "follows the default branch %s" % push["default_branch"]
    return False, "follows the default branch %s" % (push["default_branch"] or "(not in the push)")


def match_source(source, push):
    """Whether one source view (gitops_sources.source_view) must sync for a checked push: (matched, why).

    Per-cluster overrides may change a source's URL or ref; the source matches when any cluster's (or, with
    no placed cluster, the template's) URL and ref match.
    """
    candidates = [(r.get("url"), r.get("ref")) for r in source.get("renders") or []]
    if not candidates:
        candidates = [(source.get("url"), source.get("ref"))]
    reasons = []
    for url, ref in candidates:
        if normalise_url(url) not in push["keys"]:
            reasons.append("other repository")
            continue
        follows, why = ref_follows(ref, push)
        if follows:
            return True, why
        reasons.append(why)
    return False, "; ".join(dict.fromkeys(reasons))


def select_targets(sources, push, marks_dir=None):
    """Split source views into (targets, skipped) for a push. Each item: {project, source, reason}.

    Skipped: same repository but another ref, suspended, terminating, broken (errors), or covered by a
    sync that started after the push arrived. Sources of other repositories are left out of both.
    """
    push = check_push(push)
    targets, skipped = [], []
    for source in sources:
        item = dict(project=source["namespace"], source=source["name"])
        matched, why = match_source(source, push)
        if not matched:
            if why != "other repository":
                skipped.append(dict(item, reason=why))
            continue
        if source.get("suspended"):
            skipped.append(dict(item, reason="suspended"))
        elif source.get("terminating"):
            skipped.append(dict(item, reason="being torn down"))
        elif source.get("errors"):
            skipped.append(dict(item, reason="; ".join(source["errors"])))
        else:
            started = covered_by(marks_dir, item["project"], item["source"], push["received_at"])
            if started is not None:
                skipped.append(dict(item, reason="covered by the sync started at %s, after the push arrived"
                                    % time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))))
            else:
                targets.append(dict(item, reason=why))
    return targets, skipped


def _mark_path(marks_dir, project, source):
    for name in (project, source):
        if not _NAME_RE.match(name or ""):
            raise FederationError("%r is not a Kubernetes object name" % (name,))
    return os.path.join(marks_dir, project, source)


def covered_by(marks_dir, project, source, received_at):
    """The start time of a sync of the source that began after received_at, or None."""
    if not marks_dir or received_at is None:
        return None
    try:
        with open(_mark_path(marks_dir, project, source)) as handle:
            started = float(handle.read().strip() or 0)
    except (OSError, ValueError):
        return None
    return started if started > float(received_at) else None


def mark_sync_start(marks_dir, project, source, now=None):
    """Record that a sync of the source starts now (atomically: a reader never sees half a number)."""
    path = _mark_path(marks_dir, project, source)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = "%s.%d.tmp" % (path, os.getpid())
    with open(temporary, "w") as handle:
        handle.write("%.6f\n" % (time.time() if now is None else now))
    os.replace(temporary, path)
    return path


def clear_sync_start(marks_dir, project, source):
    """Forget a sync start (the sync failed, so it covers no push)."""
    try:
        os.remove(_mark_path(marks_dir, project, source))
        return True
    except FileNotFoundError:
        return False

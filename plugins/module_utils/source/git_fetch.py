# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fetch a git repository into a cached clone and resolve a ref (branch, tag, semver range, commit) to a commit.

The git CLI is run with argument lists, never through a shell, in an environment that ignores the user's
global and system git configuration, the controller's ``GIT_*`` variables, SSH agent and credential helpers,
and never prompts. Credentials reach git only through the environment of the git process: basic auth through
a GIT_ASKPASS script that echoes environment variables (the script itself holds no secret), bearer tokens as
an ``http.extraHeader`` given by GIT_CONFIG_* variables, an SSH key, known_hosts and a CA certificate as files
(0600) in a private directory (0700) under ``<cache_dir>/.credentials`` that is removed as soon as git is
done, and by the next run if the process was killed. So no secret is ever in argv, in a URL written to
``.git/config`` or in the clones of the cache. Every message that quotes git is scrubbed.

Transports: https, http, ssh and scp-like ``user@host:path`` only. ``file://`` URLs and local paths (which
would let a source read the controller's disk) need ``allow_local_urls``; ``git://`` (neither authenticated
nor encrypted) and remote helpers (``ext::``, ``fd::``...) are refused. git's ``GIT_ALLOW_PROTOCOL`` holds it to
the same list, so no redirect or submodule can use another transport.

Every run proves access with the source's own credentials (one ``git ls-remote``, also for a commit ref the
cache already has), so one tenant's clone is never served to a source that may not read the repository.

Cache layout: ``<cache_dir>/<key>/`` is a normal clone (working tree checked out at the resolved commit) and
``<cache_dir>/<key>.lock`` the flock that serialises runs on the same repository; ``key`` is the sha256 of the
URL without credentials. A cache with a stale git lock file, a broken ``.git`` or another remote URL is wiped
and cloned again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

try:
    from urllib.parse import unquote, urlsplit, urlunsplit
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    from urllib import unquote
    from urlparse import urlsplit, urlunsplit

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.private_dirs import make_run_dir, remove_stale_run_dirs
from ansible_collections.gitops.federation.plugins.module_utils.source.process import (
    ProcessTimeout, file_size_cap, run_bounded)

try:
    import semantic_version
    import semantic_version.base
    HAS_SEMANTIC_VERSION = True
except ImportError:  # reported when a semver ref is used, so other refs still work without it
    semantic_version = None
    HAS_SEMANTIC_VERSION = False

MASK = "********"
DEFAULT_TIMEOUT = 120
# What one source may cost the controller (the option ``limits`` of git_render and sync_plan; the sync playbooks'
# ``gitops_limits``). A repository is checked before it is checked out, a render before its files are parsed.
DEFAULT_LIMITS = dict(
    max_files=20000,                    # files in the commit's tree (the checkout's disk and inodes)
    max_file_size=10 * 1024 * 1024,     # bytes of any one file of the commit
    max_render_size=50 * 1024 * 1024,   # bytes read to render one path: its manifest files, or kustomize's output
    max_fetch_size=512 * 1024 * 1024,   # bytes of any one file a fetch writes into the cache: the pack git receives
)
# The module option ``limits`` (git_render, sync_plan), documented once in plugins/doc_fragments/limits.py.
LIMITS_ARG_SPEC = dict(
    limits=dict(type="dict", options=dict((name, dict(type="int", default=value))
                                          for name, value in DEFAULT_LIMITS.items())),
)
REF_KINDS = ("branch", "tag", "semver", "commit")
URL_SCHEMES = ("http", "https", "ssh", "git+ssh", "ssh+git")
LOCAL_SCHEMES = ("file",)
# The transports git may use (GIT_ALLOW_PROTOCOL); 'file' only with allow_local_urls.
ALLOWED_PROTOCOLS = ("http", "https", "ssh")
CREDENTIALS_DIR = ".credentials"
_ASKPASS_USERNAME = "GITOPS_FEDERATION_GIT_USERNAME"
_ASKPASS_PASSWORD = "GITOPS_FEDERATION_GIT_PASSWORD"
# The script prints environment variables; it never contains a secret itself.
_ASKPASS_SCRIPT = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$GITOPS_FEDERATION_GIT_USERNAME" ;;
  *) printf '%s\\n' "$GITOPS_FEDERATION_GIT_PASSWORD" ;;
esac
"""
# user@host:path; not 'transport::address' (git remote helpers such as ext:: run commands).
_SCP_LIKE_RE = re.compile(r"^(?:([^@/:]+)@)?([^/:]+):(?!//|:)")
_REMOTE_HELPER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_URL_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s:]*):[^/@\s]*@")
_HEX_RE = re.compile(r"^[0-9a-fA-F]{7,64}$")
# Known transport failures: retrying with a fresh clone cannot help, so they are reported at once.
_TRANSPORT_ERRORS = (
    "Authentication failed", "could not read Username", "could not read Password", "Host key verification failed",
    "Permission denied", "Could not read from remote repository", "unable to access", "Could not resolve host",
    "Connection refused", "not found", "does not appear to be a git repository", "Connection timed out",
    "SSL certificate problem", "server certificate verification failed", "transport '",
)


def scrub(text, secrets=()):
    """text with every secret, and the password of any ``scheme://user:password@`` URL, masked."""
    if not text:
        return text
    text = _URL_USERINFO_RE.sub(lambda m: m.group(1) + m.group(2) + ":" + MASK + "@", text)
    for secret in sorted(set(s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def split_url_credentials(url, allow_local=False):
    """(url without credentials, username, password) for a git URL; username/password None when absent.

    For HTTP(S) the whole user info is a credential and is removed; for SSH the user is part of the
    address (``git@``) and only a password is removed. ``file://`` URLs and absolute paths are refused
    unless ``allow_local`` (the module option allow_local_urls): they read the controller's own disk.
    """
    if not isinstance(url, str) or not url.strip():
        raise FederationError("url is required: the git repository to fetch")
    url = url.strip()
    if url.startswith("-"):
        raise FederationError("url %r is not a git URL" % scrub(url))
    if _REMOTE_HELPER_RE.match(url):
        raise FederationError("url %r uses a git remote helper (%s), which is refused: use https://, ssh:// or "
                              "user@host:path" % (scrub(url), url.split("::", 1)[0] + "::"))
    if "://" not in url:
        scp = _SCP_LIKE_RE.match(url)
        if scp and not url.startswith("/"):
            if (scp.group(1) or "").startswith("-") or scp.group(2).startswith("-"):
                raise FederationError("url %r is not a git URL: its user or host starts with '-'" % scrub(url))
            return url, None, None
        if url.startswith("/"):
            if not allow_local:
                raise FederationError("url %r is a local path: reading repositories from the controller's disk is "
                                      "refused unless the operator sets allow_local_urls" % scrub(url))
            return url, None, None
        raise FederationError("url %r is not a git URL: use https://, http://, ssh:// or user@host:path"
                              % scrub(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in LOCAL_SCHEMES:
        if not allow_local:
            raise FederationError("url %r is a file:// URL: reading repositories from the controller's disk is "
                                  "refused unless the operator sets allow_local_urls" % scrub(url))
        return url, None, None
    if scheme == "git":
        raise FederationError("url %r uses git://, which is neither authenticated nor encrypted: use https:// or "
                              "ssh://" % scrub(url))
    if scheme not in URL_SCHEMES:
        raise FederationError("url %r has an unsupported scheme %r: use one of %s"
                              % (scrub(url), parts.scheme, ", ".join(URL_SCHEMES)))
    if (parts.hostname or "").startswith("-") or not parts.hostname:
        raise FederationError("url %r is not a git URL: it has no valid host" % scrub(url))
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, hostport = parts.netloc.rsplit("@", 1)
    username, sep, password = userinfo.partition(":")
    if username.startswith("-"):
        raise FederationError("url %r is not a git URL: its user starts with '-'" % scrub(url))
    username = unquote(username) or None
    password = unquote(password) if sep else None
    if scheme.startswith(("http", "https")):
        netloc = hostport
    else:
        netloc = "%s@%s" % (userinfo.partition(":")[0], hostport)
        username = None
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), username, password


def cache_key(clean_url):
    return hashlib.sha256(clean_url.encode("utf-8")).hexdigest()[:32]


def default_cache_dir():
    base = os.environ.get("GITOPS_FEDERATION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "gitops-federation")
    return os.path.join(base, "git")


# -- semver ------------------------------------------------------------------------------------------------
# Ranges are npm's syntax, read by semantic_version's NpmSpec (the range syntax users know from npm and Flux's
# Masterminds/semver). Two things are added around the library: spellings Flux users write (commas and
# ``~>`` as in Masterminds, a space after an operator) are normalised to npm's; and npm's pre-release rule is
# enforced per alternative (a pre-release tag is picked only when a comparator of the same alternative names a
# pre-release of the same major.minor.patch), because NpmSpec alone lets ``<2.0.0`` pick ``2.0.0-beta.1``.

_OPERATOR_SPACE_RE = re.compile(r"(>=|<=|>|<|=|\^|~>|~)\s+(?=[vV]?[0-9xX*])")


def parse_version(text):
    """The semantic_version.Version of a tag such as ``1.2.3`` or ``v1.2.3-rc.1`` (build metadata dropped), or
    None when the tag is not a full semantic version."""
    if not isinstance(text, str):
        return None
    candidate = text[1:] if text[:1] in ("v", "V") else text
    try:
        version = semantic_version.Version(candidate)
    except ValueError:
        return None
    return version.truncate("prerelease")


def _groups(clause):
    """The AND groups (lists of Range) of an NpmSpec clause, one per ``||`` alternative."""
    if isinstance(clause, semantic_version.base.AnyOf):
        return [group for sub in clause.clauses for group in _groups(sub)]
    if isinstance(clause, semantic_version.base.AllOf):
        return [[r for sub in clause.clauses for group in _groups(sub) for r in group]]
    if isinstance(clause, semantic_version.base.Range):
        return [[clause]]
    return []  # Never / Always do not occur in a parsed NpmSpec with content


class SemverRange:
    """An npm version range (``>=1.2.0 <2.0.0``, ``^1.2``, ``~1.2.3``, ``1.x``, ``1.0.0 - 1.2.0``, ``||``)."""

    def __init__(self, text):
        if not HAS_SEMANTIC_VERSION:
            raise FederationError("ref.semver needs the Python library semantic_version on the controller "
                                  "(pip install -r requirements.txt of the collection)")
        if not isinstance(text, str) or not text.strip():
            raise FederationError("ref.semver must be a version range such as '>=1.2.0 <2.0.0'")
        self.text = text.strip()
        alternatives = [part.strip() for part in self.text.split("||")]
        if any(not part for part in alternatives):
            raise self._error("empty alternative around '||'")
        normalised = " || ".join(
            " ".join(_OPERATOR_SPACE_RE.sub(r"\1", part.replace(",", " ").replace("~>", "~")).split())
            for part in alternatives)
        try:
            self.spec = semantic_version.NpmSpec(normalised)
        except ValueError as err:
            raise self._error(str(err))
        self.groups = _groups(self.spec.clause)

    def _error(self, why):
        return FederationError("ref.semver %r is not a valid range: %s" % (self.text, why))

    def matches(self, version):
        for group in self.groups:
            if not all(comparator.match(version) for comparator in group):
                continue
            if version.prerelease and not any(
                    comparator.target.prerelease and comparator.target.truncate("patch") == version.truncate("patch")
                    for comparator in group):
                continue  # npm: a pre-release only through a comparator naming one of the same x.y.z
            return True
        return False

    def best(self, tags):
        """The tag name with the highest version matching the range, or None. Ties (v1.0.0 and 1.0.0) go to
        the name that sorts last, so the choice is stable."""
        candidates = []
        for name in tags:
            version = parse_version(name)
            if version is not None and self.matches(version):
                candidates.append((version, name))
        return max(candidates)[1] if candidates else None


def format_revision(ref_name, commit):
    """Flux's revision format: ``main@sha1:<sha>``, ``v1.2.0@sha1:<sha>``, or ``sha1:<sha>`` for a commit."""
    algorithm = "sha256" if len(commit) == 64 else "sha1"
    return "%s@%s:%s" % (ref_name, algorithm, commit) if ref_name else "%s:%s" % (algorithm, commit)


def normalize_ref(ref):
    """The one ref kind and value of a ``ref`` mapping; ``(None, None)`` means the remote's default branch."""
    ref = dict((k, v) for k, v in (ref or {}).items() if v not in (None, ""))
    unknown = sorted(set(ref) - set(REF_KINDS))
    if unknown:
        raise FederationError("ref has unknown key(s) %s: use one of %s" % (", ".join(unknown), ", ".join(REF_KINDS)))
    if len(ref) > 1:
        raise FederationError("ref may set only one of %s, got %s" % (", ".join(REF_KINDS), ", ".join(sorted(ref))))
    if not ref:
        return None, None
    kind, value = next(iter(ref.items()))
    value = str(value).strip()
    if kind == "commit" and not _HEX_RE.match(value):
        raise FederationError("ref.commit %r is not a commit SHA (7 to 64 hex digits)" % value)
    if kind in ("branch", "tag") and (value.startswith("-") or ".." in value or value.startswith("refs/")):
        raise FederationError("ref.%s %r is not a valid %s name (give the short name, e.g. 'main')" % (kind, value, kind))
    if kind == "semver":
        SemverRange(value)  # fail early on a malformed range
    return kind, value


# -- credentials ---------------------------------------------------------------------------------------------

class GitCredentials:
    """HTTPS basic auth or bearer token (with an optional CA certificate), or an SSH key with known_hosts.
    Never printed."""

    # Keys of a Flux GitRepository secret (and of a FederatedSecret holding one).
    SECRET_KEYS = {"username": "username", "password": "password", "bearerToken": "bearer_token",
                   "caFile": "ca_file", "identity": "ssh_private_key", "known_hosts": "known_hosts"}
    IGNORED_SECRET_KEYS = ("identity.pub",)

    def __init__(self, username=None, password=None, bearer_token=None, ssh_private_key=None, known_hosts=None,
                 insecure_skip_host_key_check=False, ca_file=None):
        self.username = username or None
        self.ca_file = ca_file or None  # PEM content of the CA that signed the HTTPS server's certificate
        self.password = password or None
        self.bearer_token = bearer_token or None
        self.ssh_private_key = ssh_private_key or None
        self.known_hosts = known_hosts or None
        self.insecure_skip_host_key_check = bool(insecure_skip_host_key_check)
        if self.password and self.bearer_token:
            raise FederationError("give either password or bearer_token (bearerToken), not both")

    @classmethod
    def from_secret_data(cls, data, **explicit):
        """Credentials from a secret's data (Flux key names, decoded values); explicit options win."""
        values = {}
        unsupported = []
        for key, value in (data or {}).items():
            if key in cls.SECRET_KEYS:
                values[cls.SECRET_KEYS[key]] = value
            elif key not in cls.IGNORED_SECRET_KEYS:
                unsupported.append(key)
        if unsupported:
            raise FederationError("secret_data has unsupported key(s) %s; supported: %s"
                                  % (", ".join(sorted(unsupported)), ", ".join(sorted(cls.SECRET_KEYS))))
        for name, value in explicit.items():
            if value not in (None, ""):
                values[name] = value
        return cls(**values)

    @property
    def secrets(self):
        """Every string that must never be shown: scrub() masks them."""
        found = [self.password, self.bearer_token]
        if self.username and self.password:
            userpass = ("%s:%s" % (self.username, self.password)).encode("utf-8")
            found.append(base64.b64encode(userpass).decode("ascii"))
        if self.ssh_private_key:
            found.append(self.ssh_private_key)
            found.append(self.ssh_private_key.strip())
            # Each line of the key body, in case a tool quotes part of it.
            found.extend(line.strip() for line in self.ssh_private_key.splitlines()
                         if len(line.strip()) >= 8 and not line.startswith("-----"))
        return [s for s in found if s]


class Limits:
    """Bounds on one source's repository and render (DEFAULT_LIMITS unless the option ``limits`` raises them).

    A source past a limit is refused with an error naming the limit, its value and the option that raises it;
    nothing is checked out, rendered or written.
    """

    def __init__(self, max_files=None, max_file_size=None, max_render_size=None, max_fetch_size=None,
                 option="limits"):
        given = dict(max_files=max_files, max_file_size=max_file_size, max_render_size=max_render_size,
                     max_fetch_size=max_fetch_size)
        for name, value in given.items():
            if value is None:
                value = DEFAULT_LIMITS[name]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise FederationError("%s.%s must be a positive integer, got %r" % (option, name, value))
            setattr(self, name, value)
        self.option = option

    @classmethod
    def from_option(cls, value, option="limits"):
        """Limits from a module option: None (the defaults) or a mapping of some of DEFAULT_LIMITS."""
        if isinstance(value, Limits):
            return value
        value = value or {}
        if not isinstance(value, dict):
            raise FederationError("%s must be a mapping of %s, got %r" % (option, ", ".join(sorted(DEFAULT_LIMITS)),
                                                                          value))
        unknown = sorted(set(value) - set(DEFAULT_LIMITS))
        if unknown:
            raise FederationError("%s: unknown limit %s (known: %s)" % (option, ", ".join(unknown),
                                                                        ", ".join(sorted(DEFAULT_LIMITS))))
        return cls(option=option, **value)

    def exceeded(self, what, name, found):
        """The error for ``what`` (a repository, file, render or download) being past limit ``name``."""
        return FederationError("%s: %s, more than the limit %s.%s=%d; refused before rendering, nothing was "
                               "written or applied. Raise %s.%s (gitops_limits.%s in the sync playbooks) if this is "
                               "meant to be synced" % (what, found, self.option, name, getattr(self, name),
                                                       self.option, name, name), limit="%s.%s" % (self.option, name))


class GitCommandError(Exception):
    def __init__(self, message, stderr):
        super(GitCommandError, self).__init__(message)
        self.message = message
        self.stderr = stderr


class Checkout:
    """The outcome of a sync: a working tree at ``commit``."""

    def __init__(self, path, commit, ref_name, fetched, rebuilt_because=None):
        self.path = path
        self.commit = commit
        self.ref_name = ref_name
        self.revision = format_revision(ref_name, commit)
        self.fetched = fetched
        self.rebuilt_because = rebuilt_because


class GitSource:
    """One repository URL with its credentials and its cached clone."""

    def __init__(self, url, credentials=None, cache_dir=None, timeout=DEFAULT_TIMEOUT, tmp_dir=None,
                 allow_local_urls=False, limits=None):
        self.credentials = credentials or GitCredentials()
        self.limits = Limits.from_option(limits)
        self.allow_local_urls = bool(allow_local_urls)
        self.url, url_username, url_password = split_url_credentials(url, allow_local=self.allow_local_urls)
        if url_username and not self.credentials.username:
            self.credentials.username = url_username
        if url_password and not self.credentials.password:
            self.credentials.password = url_password
        self.secrets = self.credentials.secrets
        self.cache_dir = os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir()))
        self.key = cache_key(self.url)
        self.path = os.path.join(self.cache_dir, self.key)
        self.lock_path = self.path + ".lock"
        self.timeout = float(timeout or DEFAULT_TIMEOUT)
        # Credential files live in private directories here; a killed run's are removed by the next one.
        self.tmp_dir = tmp_dir or os.path.join(self.cache_dir, CREDENTIALS_DIR)
        self._env = None
        self._deadline = None

    # -- public ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def checkout(self, ref=None):
        """Hold the cache lock, bring the clone to the commit ``ref`` resolves to, and yield a Checkout.

        ``ref`` is a mapping with one of branch/tag/semver/commit (none: the remote's default branch).
        Credential files exist only while git runs, not while the caller reads the working tree.
        """
        kind, value = self._start(ref)
        with self._lock():
            with self._credential_env():
                checkout = self._sync(kind, value)
            yield checkout

    def resolve(self, ref=None):
        """(revision, commit) that ``ref`` points at on the remote now, with one ``git ls-remote`` (the access
        proof every run makes), without touching the cached clone. ``commit`` is None when it cannot be known
        without the clone: an abbreviated commit ref."""
        kind, value = self._start(ref)
        with self._credential_env():
            ref_name, commit, ref_type = self._resolve_remote(kind, value)
        if ref_type == "commit":
            commit = value.lower() if re.match(r"^([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$", value) else None
        return (format_revision(ref_name, commit) if commit else None), commit

    def _start(self, ref):
        """The (kind, value) of ref, with this operation's deadline set, the cache directory made and the
        credential directories of killed runs removed."""
        kind, value = normalize_ref(ref)
        self._deadline = time.monotonic() + self.timeout
        try:
            os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
        except OSError as err:
            raise FederationError("cannot create cache_dir %s: %s" % (self.cache_dir, err.strerror))
        remove_stale_run_dirs(self.tmp_dir)
        return kind, value

    # -- ref resolution ---------------------------------------------------------------------------------

    def _ls_remote(self, option, *patterns):
        """{refname: commit} from one ``git ls-remote`` round trip; peeled tags resolve to their commit."""
        output = self._git(["ls-remote", option, self.url] + list(patterns), what="list refs of", cwd=self.cache_dir)
        refs, peeled, symrefs = {}, {}, {}
        for line in output.splitlines():
            sha, name = (line.split("\t", 1) + [""])[:2]
            if sha.startswith("ref: "):
                symrefs[name] = sha[5:]
            elif name.endswith("^{}"):
                peeled[name[:-3]] = sha
            elif name:
                refs[name] = sha
        refs.update(peeled)
        return refs, symrefs

    def _resolve_remote(self, kind, value):
        """(ref name, remote commit or None, local ref to fetch into) for one ref, with one round trip."""
        if kind is None:
            refs, symrefs = self._ls_remote("--symref")
            head = symrefs.get("HEAD", "")
            if not head.startswith("refs/heads/"):
                raise FederationError("the repository %s has no default branch (HEAD); set ref.branch" % self.url)
            branch = head[len("refs/heads/"):]
            return branch, refs.get(head), "branch"
        if kind == "branch":
            name = "refs/heads/" + value
            refs = self._ls_remote("--heads", name)[0]
            if name not in refs:
                raise FederationError("branch %r not found in %s (option ref.branch)" % (value, self.url))
            return value, refs[name], "branch"
        if kind == "tag":
            name = "refs/tags/" + value
            refs = self._ls_remote("--tags", name, name + "^{}")[0]
            if name not in refs:
                raise FederationError("tag %r not found in %s (option ref.tag)" % (value, self.url))
            return value, refs[name], "tag"
        if kind == "semver":
            refs = self._ls_remote("--tags")[0]
            tags = [name[len("refs/tags/"):] for name in refs if name.startswith("refs/tags/")]
            best = SemverRange(value).best(tags)
            if best is None:
                versions = sorted((parse_version(t), t) for t in tags if parse_version(t) is not None)
                seen = ", ".join(pair[1] for pair in versions[-10:]) or "none"
                raise FederationError("no tag of %s matches ref.semver %r (semver tags: %s)" % (self.url, value, seen))
            return best, refs["refs/tags/" + best], "tag"
        # A commit the cache may already have: the round trip still proves that these credentials may read
        # the repository, so a clone fetched for one source is never served to another that may not.
        self._ls_remote("--symref", "HEAD")
        return None, None, "commit"

    # -- cache --------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self):
        """An exclusive flock per repository: concurrent runs on one URL take turns. The kernel drops it when
        a process dies, so it never goes stale (git's own *.lock files can; see _unhealthy)."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except (IOError, OSError):
                    if time.monotonic() >= self._deadline:
                        raise FederationError("the cache of %s (%s) stayed locked by another run for %ss (option timeout)"
                                              % (self.url, self.path, int(self.timeout)))
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)

    def _unhealthy(self):
        """Why the cached clone cannot be used as is, or None when it can (or does not exist yet)."""
        git_dir = os.path.join(self.path, ".git")
        if not os.path.lexists(self.path):
            return None
        if not os.path.isdir(git_dir):
            return "it has no .git directory"
        # We hold the flock, so no git of ours is running here: any git lock file is left over from a
        # process that was killed, and git would refuse to work until it is gone.
        for top, dirs, files in os.walk(git_dir):
            dirs[:] = [d for d in dirs if d not in ("objects",)]
            for name in files:
                if name.endswith(".lock"):
                    return "it has a stale lock file %s" % os.path.relpath(os.path.join(top, name), self.path)
        try:
            origin = self._git(["config", "--get", "remote.origin.url"], what="read the cache of", cwd=self.path)
        except FederationError:
            return "git cannot read it"
        if origin.strip() != self.url:
            return "it belongs to another URL"
        return None

    def _rebuild(self):
        if os.path.lexists(self.path):
            try:
                shutil.rmtree(self.path) if os.path.isdir(self.path) and not os.path.islink(self.path) \
                    else os.remove(self.path)
            except OSError as err:
                raise FederationError("cannot remove the broken cache %s: %s" % (self.path, err))
        self._git(["init", "-q", self.path], what="create the cache of", cwd=self.cache_dir)
        self._git(["remote", "add", "origin", self.url], what="configure the cache of", cwd=self.path)

    def _sync(self, kind, value):
        ref_name, remote_commit, ref_type = self._resolve_remote(kind, value)
        reason = self._unhealthy()
        rebuilt_because = reason
        if reason or not os.path.isdir(self.path):
            self._rebuild()
        try:
            commit, fetched = self._ensure_commit(ref_type, ref_name if ref_type != "commit" else value,
                                                  remote_commit)
            self._checkout(commit)
        except GitCommandError as err:
            if any(marker in err.stderr for marker in _TRANSPORT_ERRORS):
                raise FederationError(err.message)
            # A failure inside the clone (corrupt objects, broken refs): start again from a fresh clone once.
            rebuilt_because = "git failed in it: %s" % _summary(err.stderr)
            self._rebuild()
            try:
                commit, fetched = self._ensure_commit(ref_type, ref_name if ref_type != "commit" else value,
                                                      remote_commit)
                self._checkout(commit)
            except GitCommandError as again:
                raise FederationError(again.message)
        return Checkout(self.path, commit, ref_name, fetched, rebuilt_because)

    def _local_commit(self, rev):
        """The full SHA of rev if the clone has that commit, else None."""
        try:
            return self._git(["rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}"],
                             what="inspect the cache of", cwd=self.path, raw_errors=True).strip() or None
        except GitCommandError:
            return None

    def _fetch(self, *refspecs):
        """git fetch, each file it writes capped at limits.max_fetch_size by RLIMIT_FSIZE: git has no size limit of
        its own, and a repository holding a huge file that does not compress would fill the controller's disk."""
        cap = self.limits.max_fetch_size
        try:
            self._git(["fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "origin"] + list(refspecs),
                      what="fetch", cwd=self.path, raw_errors=True, preexec_fn=file_size_cap(cap))
        except GitCommandError as err:
            largest = self._remove_partial_downloads()
            if largest < cap and not _past_file_size_limit(err):
                raise
            raise self.limits.exceeded("the download of %s" % self.url, "max_fetch_size",
                                       "git received a pack or object of more than %d bytes" % cap)

    def _remove_partial_downloads(self):
        """Remove the temporary pack or objects a stopped fetch leaves (git removes them only when it ends by
        itself): ``objects/pack/tmp_pack_*`` and ``objects/<xx>/tmp_obj_*``. Returns the size of the largest: one
        at the RLIMIT_FSIZE cap tells a fetch stopped by max_fetch_size (git's message does not always say)."""
        largest = 0
        for top, unused, names in os.walk(os.path.join(self.path, ".git", "objects")):
            for name in names:
                if name.startswith(("tmp_pack_", "tmp_idx_", "tmp_obj_")):
                    path = os.path.join(top, name)
                    try:
                        largest = max(largest, os.path.getsize(path))
                        os.remove(path)
                    except OSError:
                        pass
        return largest

    def _ensure_commit(self, ref_type, name, remote_commit):
        """(commit, fetched): the commit the ref points at, fetching only when the clone lacks it."""
        if ref_type == "commit":
            found = self._local_commit(name)
            if found:
                return found, False
            self._fetch("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
            found = self._local_commit(name)
            if not found and len(name) in (40, 64):
                try:  # a commit no branch or tag reaches; servers may allow fetching it by SHA
                    self._fetch(name)
                except GitCommandError:
                    pass
                found = self._local_commit(name)
            if not found:
                raise FederationError("commit %s not found in %s (option ref.commit)" % (name, self.url))
            return found, True
        if remote_commit and self._local_commit(remote_commit):
            return remote_commit, False
        if ref_type == "branch":
            local_ref = "refs/remotes/origin/" + name
            self._fetch("+refs/heads/%s:%s" % (name, local_ref))
        else:
            local_ref = "refs/tags/" + name
            self._fetch("+%s:%s" % (local_ref, local_ref))
        # The ref may have moved since ls-remote; what was fetched is what we check out and report.
        found = self._local_commit(local_ref)
        if not found:
            raise FederationError("%s %r of %s does not point at a commit" % (ref_type, name, self.url))
        return found, True

    def _checkout(self, commit):
        self._check_tree(commit)
        self._git(["checkout", "--quiet", "--force", "--detach", commit], what="check out", cwd=self.path,
                  raw_errors=True)
        # Nothing but the commit's files: a previous run or a person may have left files behind.
        self._git(["clean", "-q", "-ffdx"], what="clean the checkout of", cwd=self.path, raw_errors=True)

    def _check_tree(self, commit):
        """Refuse a commit whose tree is past limits.max_files or limits.max_file_size, before checking it out.

        ``git ls-tree`` reads the commit's tree from the clone (sizes without reading the blobs); its output
        is streamed, so a tree of millions of entries costs neither memory nor disk.
        """
        env = minimal_env()
        env["GIT_ALLOW_PROTOCOL"] = self._allowed_protocols()
        try:
            proc = subprocess.Popen(["git", "ls-tree", "-r", "-l", "-z", "--full-tree", commit], cwd=self.path,
                                    env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as err:
            raise FederationError("cannot run git (%s): install git on the controller" % err.strerror)
        what = "the repository %s at %s" % (self.url, commit[:12])
        files, pending, problem = 0, b"", None
        try:
            while problem is None:
                chunk = proc.stdout.read(65536)
                if not chunk:
                    break
                entries = (pending + chunk).split(b"\0")
                pending = entries.pop()
                for entry in entries:
                    meta, unused_tab, path = entry.partition(b"\t")
                    fields = meta.split()
                    if len(fields) < 4 or fields[1] != b"blob":
                        continue  # submodules (commits) have no file here
                    files += 1
                    if files > self.limits.max_files:
                        problem = self.limits.exceeded(what, "max_files", "more than %d files"
                                                       % self.limits.max_files)
                        break
                    size = int(fields[3]) if fields[3].isdigit() else 0
                    if size > self.limits.max_file_size:
                        problem = self.limits.exceeded(
                            what, "max_file_size", "the file %s has %d bytes" % (path.decode("utf-8", "replace"),
                                                                                 size))
                        break
        finally:
            if (problem is not None or sys.exc_info()[0] is not None) and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
            proc.stdout.close()
            proc.wait()
        if problem is not None:
            raise problem
        if proc.returncode != 0:
            raise GitCommandError("git: cannot list the files of %s in the cache of %s" % (commit, self.url),
                                  "ls-tree failed")

    # -- running git --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _credential_env(self):
        """The git environment, with credential files in a private temp dir removed on the way out."""
        env = minimal_env()
        env["GIT_ALLOW_PROTOCOL"] = self._allowed_protocols()
        config = [
            ("credential.helper", ""),  # never store or look up credentials anywhere
            ("advice.detachedHead", "false"),
            ("gc.autoDetach", "false"),  # no background gc outliving the run and holding locks
            ("protocol.allow", "never"),  # GIT_ALLOW_PROTOCOL lists the transports allowed
            ("http.sslVerify", "true"),
            ("init.defaultBranch", "gitops-federation-cache"),
        ]
        creds = self.credentials
        cred_dir = make_run_dir(self.tmp_dir)
        try:
            env["HOME"] = cred_dir  # no ~/.gitconfig, ~/.netrc or ~/.ssh of the controller's user
            if creds.ca_file:
                ca_path = os.path.join(cred_dir, "ca.pem")
                _write_private(ca_path, creds.ca_file.rstrip("\n") + "\n", 0o600)
                config.append(("http.sslCAInfo", ca_path))
            if creds.username or creds.password:
                askpass = os.path.join(cred_dir, "askpass.sh")
                _write_private(askpass, _ASKPASS_SCRIPT, 0o700)
                env.update({"GIT_ASKPASS": askpass, _ASKPASS_USERNAME: creds.username or "",
                            _ASKPASS_PASSWORD: creds.password or ""})
            if creds.bearer_token:
                config.append(("http.extraHeader", "Authorization: Bearer %s" % creds.bearer_token))
            # No agent, no ~/.ssh/config: only the source's key is offered.
            ssh = ["ssh", "-F", os.devnull, "-o", "BatchMode=yes", "-o", "IdentityAgent=none",
                   "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=%d" % max(1, int(self.timeout))]
            if creds.ssh_private_key:
                key_path = os.path.join(cred_dir, "identity")
                key = creds.ssh_private_key if creds.ssh_private_key.endswith("\n") else creds.ssh_private_key + "\n"
                _write_private(key_path, key, 0o600)
                ssh += ["-i", key_path]
            else:
                ssh += ["-o", "IdentityFile=none"]  # never the controller user's own keys (~/.ssh/id_*)
            if creds.insecure_skip_host_key_check:
                ssh += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=" + os.devnull,
                        "-o", "LogLevel=ERROR"]
            else:
                ssh += ["-o", "StrictHostKeyChecking=yes"]
                if not creds.known_hosts:
                    # HOME is private now; keep checking against the user's own known_hosts, as documented.
                    user_known_hosts = os.path.join(os.path.expanduser("~"), ".ssh", "known_hosts")
                    ssh += ["-o", "UserKnownHostsFile=" + user_known_hosts]
                if creds.known_hosts:
                    known_hosts_path = os.path.join(cred_dir, "known_hosts")
                    text = creds.known_hosts if creds.known_hosts.endswith("\n") else creds.known_hosts + "\n"
                    _write_private(known_hosts_path, text, 0o600)
                    ssh += ["-o", "UserKnownHostsFile=" + known_hosts_path]
            # git runs GIT_SSH_COMMAND through sh; every word is quoted, and it holds paths only, no secret.
            env["GIT_SSH_COMMAND"] = " ".join(shlex.quote(word) for word in ssh)
            env["GIT_CONFIG_COUNT"] = str(len(config))
            for index, (key, value) in enumerate(config):
                env["GIT_CONFIG_KEY_%d" % index] = key
                env["GIT_CONFIG_VALUE_%d" % index] = value
            self._env = env
            yield env
        finally:
            self._env = None
            shutil.rmtree(cred_dir, ignore_errors=True)

    def _allowed_protocols(self):
        return ":".join(ALLOWED_PROTOCOLS + (LOCAL_SCHEMES if self.allow_local_urls else ()))

    def _git(self, args, what, cwd, raw_errors=False, preexec_fn=None):
        """Run git with an argument list; stdout on success. Errors name the operation and URL, scrubbed."""
        env = self._env
        if env is None:  # outside _credential_env: local commands only
            env = minimal_env()
            env["GIT_ALLOW_PROTOCOL"] = self._allowed_protocols()
        remaining = self._deadline - time.monotonic() if self._deadline else self.timeout
        if remaining <= 0:
            raise FederationError("git: %s %s did not finish within %ss (option timeout)"
                                  % (what, self.url, int(self.timeout)))
        try:
            # git's helpers (ssh, git-remote-http) run in the same new session: a timeout stops them all.
            returncode, out, err = run_bounded(["git"] + args, cwd=cwd, env=env, timeout=remaining,
                                               preexec_fn=preexec_fn)
        except OSError as err:
            raise FederationError("cannot run git (%s): install git on the controller" % err.strerror)
        except ProcessTimeout:
            raise FederationError("git: %s %s did not finish within %ss (option timeout)"
                                  % (what, self.url, int(self.timeout)))
        stdout = out.decode("utf-8", "replace")
        if returncode == 0:
            return stdout
        stderr = scrub(err.decode("utf-8", "replace"), self.secrets)
        message = "git: cannot %s %s: %s%s" % (what, self.url, _summary(stderr), _hint(stderr))
        if raw_errors:
            raise GitCommandError(message, stderr)
        raise FederationError(message)


def _past_file_size_limit(err):
    """Whether a git command failed because a process of it passed RLIMIT_FSIZE (SIGXFSZ, or EFBIG when the
    signal is ignored)."""
    return "signal %d" % signal.SIGXFSZ in err.stderr or "File too large" in err.stderr or \
        "file size limit exceeded" in err.stderr.lower()


def _summary(stderr):
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " ".join(lines) if lines else "git exited with an error and printed nothing"


def _hint(stderr):
    if "Authentication failed" in stderr:
        return " (check username and password/token)"
    if "could not read Username" in stderr or "could not read Password" in stderr:
        return " (the server asks for credentials: set username and password, or secret_data)"
    if "Host key verification failed" in stderr:
        return (" (the server's SSH host key is not in known_hosts or does not match it: give its key in "
                "known_hosts, or set insecure_skip_host_key_check)")
    if "SSL certificate problem" in stderr or "server certificate verification failed" in stderr:
        return (" (the server's TLS certificate is not trusted: give the CA that signed it in ca_file, the caFile "
                "key of the source's secret)")
    if "transport '" in stderr and "not allowed" in stderr:
        return " (only https, http and ssh are allowed; local repositories need allow_local_urls)"
    if "Permission denied (publickey" in stderr:
        return " (the server refused the SSH key: check ssh_private_key and that the key has access)"
    return ""


def minimal_env(path=None):
    """The environment of the tools we run: PATH and the locale only, git's configuration and prompts off.

    Nothing of the controller's environment reaches git or kustomize (no SSH agent, no GIT_* variables,
    no credential helper, no proxy or token variables); callers add HOME (a private directory) and what
    the tool needs.
    """
    env = {"PATH": os.environ.get("PATH", os.defpath) if path is None else path,
           "LC_ALL": "C", "LANGUAGE": "C",
           "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    for name in ("TMPDIR",):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def _write_private(path, text, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)

"""A real Gitea on loopback: the SCM whose pushes deliver signed webhooks (tests of sync on push).

Built from the Go module proxy by tools/binaries/build.sh (SQLite through cgo). One instance per work
directory: SQLite database, repositories and logs under ``<workdir>``, HTTP on a free loopback port, no SSH,
offline mode, registration closed, webhooks allowed to loopback addresses only. An admin user is created with
``gitea admin user create``, which generates its password and an access token; both are kept in
``<workdir>/state.json`` (0600), never in argv.
"""

import base64
import getpass
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

from .binaries import binary
from .processes import LocalEnvError, free_port, log_tail, spawn, stop, wait_http

_AUTHOR_ENV = {
    "GIT_AUTHOR_NAME": "gitops-federation tests", "GIT_AUTHOR_EMAIL": "tests@gitops-federation.invalid",
    "GIT_COMMITTER_NAME": "gitops-federation tests", "GIT_COMMITTER_EMAIL": "tests@gitops-federation.invalid",
}

_APP_INI = """\
APP_NAME = gitops-federation tests
RUN_MODE = prod
RUN_USER = {user}
WORK_PATH = {workdir}
{root_ok}

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {port}
ROOT_URL = http://127.0.0.1:{port}/
LOCAL_ROOT_URL = http://127.0.0.1:{port}/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
APP_DATA_PATH = {workdir}/data
STATIC_ROOT_PATH = {static}

[database]
DB_TYPE = sqlite3
PATH = {workdir}/data/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = {workdir}/repos
DEFAULT_BRANCH = main
DISABLE_STARS = true

[security]
INSTALL_LOCK = true
SECRET_KEY = {secret_key}
INTERNAL_TOKEN = {internal_token}
PASSWORD_COMPLEXITY = off
MIN_PASSWORD_LENGTH = 8

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true
DEFAULT_KEEP_EMAIL_PRIVATE = true
NO_REPLY_ADDRESS = gitea.invalid

[webhook]
; Deliveries may only go to loopback (the listener under test); nothing else is reachable.
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 10
SKIP_TLS_VERIFY = false

[queue]
TYPE = channel

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[mailer]
ENABLED = false

[actions]
ENABLED = false

[packages]
ENABLED = false

[cron]
ENABLED = false

[cron.update_checker]
ENABLED = false

[migrations]
ALLOW_LOCALNETWORKS = false

[log]
MODE = console
LEVEL = Warn
ROOT_PATH = {workdir}/log
"""


def _git(*args, cwd=None, env=None):
    environment = dict(os.environ, **_AUTHOR_ENV, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
    environment.update(env or {})
    result = subprocess.run(["git", *args], cwd=cwd, env=environment, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalEnvError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


class Gitea:
    """One Gitea server (state in <workdir>/state.json)."""

    username = "gitops"

    def __init__(self, workdir):
        self.workdir = os.path.abspath(workdir)
        self.state_path = os.path.join(self.workdir, "state.json")
        self.config_path = os.path.join(self.workdir, "custom", "conf", "app.ini")
        self.log_path = os.path.join(self.workdir, "gitea.log")
        self.state = {}

    @classmethod
    def load(cls, workdir):
        server = cls(workdir)
        if os.path.exists(server.state_path):
            with open(server.state_path) as handle:
                server.state = json.load(handle)
        return server

    # -- what clients need ---------------------------------------------------------------------

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.state['port']}"

    @property
    def api_url(self):
        return f"{self.base_url}/api/v1"

    @property
    def password(self):
        return self.state["password"]

    @property
    def token(self):
        return self.state["token"]

    def http_url(self, repo, owner=None):
        return f"{self.base_url}/{owner or self.username}/{repo}.git"

    # -- lifecycle -----------------------------------------------------------------------------

    def _env(self):
        env = dict(os.environ, GITEA_WORK_DIR=self.workdir, GITEA_CUSTOM=os.path.join(self.workdir, "custom"),
                   HOME=os.path.join(self.workdir, "home"), USER=getpass.getuser())
        if os.geteuid() == 0:
            # Gitea refuses root unless told; the tests run as root in containers.
            env["GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT"] = "true"
        return env

    def start(self, timeout=120):
        if self.state:
            raise LocalEnvError(f"gitea already recorded in {self.state_path}; stop it first")
        shutil.rmtree(self.workdir, ignore_errors=True)
        for sub in ("custom/conf", "data", "repos", "log", "home"):
            os.makedirs(os.path.join(self.workdir, sub), mode=0o700, exist_ok=True)
        gitea = binary("gitea")
        static = os.path.join(os.path.dirname(gitea), "static")
        if not os.path.isdir(os.path.join(static, "options")):
            raise LocalEnvError(f"{static} (Gitea's templates and options) is missing; run tools/binaries/build.sh")
        port = free_port()
        self.state = {"port": port}
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(_APP_INI.format(
                user=getpass.getuser(), workdir=self.workdir, port=port, static=static,
                root_ok="I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true" if os.geteuid() == 0 else "",
                secret_key=secrets.token_hex(32), internal_token=secrets.token_hex(48)))
        try:
            self._run_cli("migrate")
            self.state["pid"] = spawn([gitea, "web", "--config", self.config_path], self.log_path,
                                      env=self._env(), cwd=self.workdir)
            wait_http(f"{self.base_url}/api/healthz", self.state["pid"], self.log_path, "gitea", timeout=timeout,
                      expect=b"pass")
            self._create_admin()
        except BaseException:
            self.stop()
            raise
        self._save()
        return self

    def stop(self):
        stop(self.state.get("pid"))
        self.state = {}
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _save(self):
        fd = os.open(self.state_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.state, handle, indent=2)

    def _run_cli(self, *args):
        result = subprocess.run([binary("gitea"), *args, "--config", self.config_path], env=self._env(),
                                cwd=self.workdir, capture_output=True, text=True, check=False, timeout=300)
        if result.returncode != 0:
            raise LocalEnvError(f"gitea {args[0]} {args[1] if len(args) > 1 else ''} failed (exit "
                                f"{result.returncode}): {result.stderr.strip()[-2000:]}\n{log_tail(self.log_path)}")
        return result.stdout

    def _create_admin(self):
        # Nothing secret in argv: the CLI generates the password and an access token and prints them.
        output = self._run_cli("admin", "user", "create", "--admin", "--username", self.username,
                               "--email", "gitops@gitea.invalid", "--random-password",
                               "--random-password-length", "24", "--must-change-password=false",
                               "--access-token", "--access-token-name", "gitops-federation-tests",
                               "--access-token-scopes", "write:repository,write:user")
        for line in output.splitlines():
            if line.startswith("generated random password is '"):
                self.state["password"] = line[len("generated random password is '"):].rstrip().rstrip("'")
            elif line.startswith("Access token was successfully created..."):
                self.state["token"] = line.rsplit(" ", 1)[-1].strip()
        if not self.state.get("password") or not self.state.get("token"):
            raise LocalEnvError("gitea admin user create did not print the generated password and token")

    # -- REST ----------------------------------------------------------------------------------

    def request(self, method, path, body=None, auth=None, token=None):
        """Call the API (basic auth as the admin by default); return the decoded JSON or None."""
        user, password = auth or (self.username, self.state["password"])
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"token {token}"
        else:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as err:
            raise LocalEnvError(f"gitea {method} {path}: HTTP {err.code}: {err.read()[:500]!r}") from None
        return json.loads(text) if text.strip() else None

    def hooks(self, repo, owner=None):
        return self.request("GET", f"/repos/{owner or self.username}/{repo}/hooks")

    def hook_deliveries(self, repo, hook_id, owner=None):
        """The delivery history of one hook (newest first): Gitea's own record of what it sent and got back."""
        return self.request("GET", f"/repos/{owner or self.username}/{repo}/hooks/{hook_id}/deliveries") or []

    # -- repositories --------------------------------------------------------------------------

    def create_repo(self, name, source_dir=None, files=None, branch="main"):
        """Create repository <name> owned by the admin, push a first commit; return its sha."""
        self.request("POST", "/user/repos", {"name": name, "private": True, "auto_init": False,
                                             "default_branch": branch})
        return self.commit(name, source_dir=source_dir, files=files or {}, message="initial commit", branch=branch,
                           replace=True)

    def _push_env(self, work):
        """git credentials for pushes through a GIT_ASKPASS script that echoes environment variables."""
        askpass = os.path.join(work, ".askpass")
        with open(askpass, "w") as handle:
            handle.write('#!/bin/sh\ncase "$1" in Username*) echo "$GITEA_TEST_USER" ;; *) echo "$GITEA_TEST_PW" ;;'
                         ' esac\n')
        os.chmod(askpass, 0o700)
        return {"GIT_ASKPASS": askpass, "GITEA_TEST_USER": self.username, "GITEA_TEST_PW": self.state["password"]}

    def commit(self, name, files=None, source_dir=None, message="update", branch="main", tag=None, replace=False):
        """Commit files to a branch and push it over HTTP (a real push: Gitea runs its hooks and delivers
        webhooks); optionally push a tag too. Returns the commit sha."""
        url = self.http_url(name)
        with tempfile.TemporaryDirectory(prefix="gitea-work-") as scratch:
            work = os.path.join(scratch, "repo")
            env = self._push_env(scratch)
            exists = subprocess.run(["git", "ls-remote", "--exit-code", "--heads", url, branch],
                                    env=dict(os.environ, GIT_TERMINAL_PROMPT="0", **env), capture_output=True,
                                    check=False).returncode == 0
            if exists and not replace:
                _git("clone", "-q", "--branch", branch, url, work, env=env)
            else:
                _git("init", "-q", f"--initial-branch={branch}", work)
                if exists:
                    _git("fetch", "-q", url, branch, cwd=work, env=env)
                    _git("reset", "-q", "--soft", "FETCH_HEAD", cwd=work)
            if source_dir:
                shutil.copytree(source_dir, work, dirs_exist_ok=True, symlinks=True)
            for relative, content in (files or {}).items():
                path = os.path.join(work, relative)
                if content is None:
                    _git("rm", "-q", relative, cwd=work)
                    continue
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as handle:
                    handle.write(content)
            _git("add", "-A", cwd=work)
            _git("commit", "-q", "--allow-empty", "-m", message, cwd=work)
            sha = _git("rev-parse", "HEAD", cwd=work)
            _git("push", "-q", url, f"HEAD:refs/heads/{branch}", cwd=work, env=env)
            if tag:
                _git("tag", "-f", tag, sha, cwd=work)
                _git("push", "-q", "-f", url, f"refs/tags/{tag}", cwd=work, env=env)
        return sha

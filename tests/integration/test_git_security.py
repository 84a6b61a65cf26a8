"""git_render as a tenant boundary, against the real HTTP/HTTPS (basic auth) and SSH (deploy key) git servers
and the real kustomize: access proved on every fetch, no local or odd transports, kustomize without the
controller's environment or remote bases, a private CA from caFile, credential files private and never left
behind by a killed run, and no secret in any process's arguments.
"""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import yaml

from ansible_collections.gitops.federation.plugins.module_utils.source import render as render_module
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils import private_dirs
from ansible_collections.gitops.federation.plugins.module_utils.source.git_fetch import GitCredentials, GitSource
from ansible_collections.gitops.federation.plugins.module_utils.source.render import render_directory
from kube import unique_name
from playbook import run_module

MODULE = "gitops.federation.git_render"


def cm(name, **data):
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})


def read(path):
    with open(path) as handle:
        return handle.read()


def render(args, **kwargs):
    result, _ = run_module(MODULE, args, **kwargs)
    return result


def new_key(tmp_path, name):
    path = str(tmp_path / name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
    return read(path)


def key_body_lines(key):
    # The first body line is the same in every OpenSSH ed25519 key ("openssh-key-v1", cipher none...).
    return [line for line in key.splitlines() if line and not line.startswith("-----")][1:]


@pytest.fixture(scope="module")
def private_repo(git_servers):
    """Project A's private repository: every transport of the test servers requires credentials."""
    name = unique_name("private")
    sha = git_servers.create_repo(name, files={
        "deploy/secret-plan.yaml": cm("project-a-only", plan="confidential"),
        "remote-url/kustomization.yaml": "resources:\n  - https://github.com/kubernetes-sigs/kustomize//examples/"
                                         "helloWorld?ref=v3.3.1\n",
        "remote-scp/kustomization.yaml": "resources:\n  - ../local\n  - git@github.com:org/repo//base?ref=main\n",
        "local/cm.yaml": cm("local"),
        "local/kustomization.yaml": "resources:\n  - cm.yaml\n",
        "overlay/kustomization.yaml": "resources:\n  - ../nested-remote\n",
        "nested-remote/kustomization.yaml": "components:\n  - gh:org/repo/components/x\n",
    })
    return {"name": name, "commit": sha}


# -- 17.10: every fetch proves access with the source's own credentials --------------------------------------------

def test_commit_in_the_shared_cache_is_not_served_without_access(private_repo, git_servers, tmp_path):
    cache = str(tmp_path / "shared-cache")  # one controller, one cache for every project
    commit = private_repo["commit"]
    project_a = render({"url": git_servers.http_url(private_repo["name"]), "ref": {"commit": commit},
                        "path": "deploy", "username": git_servers.username, "password": git_servers.password,
                        "cache_dir": cache, "dest": str(tmp_path / "a.yaml")})
    assert project_a.get("failed") is not True, project_a
    assert project_a["commit"] == commit
    ssh_a = render({"url": git_servers.ssh_url(private_repo["name"]), "ref": {"commit": commit}, "path": "deploy",
                    "ssh_private_key": read(git_servers.deploy_key), "known_hosts": read(git_servers.known_hosts),
                    "cache_dir": cache, "dest": str(tmp_path / "a-ssh.yaml")})
    assert ssh_a.get("failed") is not True, ssh_a

    # Project B points at the same URL and commit, without valid credentials of its own.
    wrong = "wrong-" + unique_name("pw")
    attempts = {
        "no credentials": ({"url": git_servers.http_url(private_repo["name"])},
                           "the server asks for credentials"),
        "wrong password": ({"url": git_servers.http_url(private_repo["name"]), "username": git_servers.username,
                            "password": wrong}, "Authentication failed"),
        "another SSH key": ({"url": git_servers.ssh_url(private_repo["name"]),
                             "ssh_private_key": new_key(tmp_path, "other-key"),
                             "known_hosts": read(git_servers.known_hosts)}, "the server refused the SSH key"),
        "no SSH key": ({"url": git_servers.ssh_url(private_repo["name"]),
                        "known_hosts": read(git_servers.known_hosts)}, "Permission denied (publickey"),
    }
    for why, (args, message) in attempts.items():
        for ref in ({"commit": commit}, {"commit": commit[:10]}):
            dest = tmp_path / ("b-%s.yaml" % why.replace(" ", "-"))
            result, run = run_module(MODULE, dict(args, ref=ref, path="deploy", cache_dir=cache, dest=str(dest)))
            assert result["failed"] is True, (why, result)
            assert message in result["msg"], (why, result["msg"])
            assert "project-a-only" not in run.output and "confidential" not in run.output
            assert not dest.exists(), why  # no content at all
            assert wrong not in run.output

    # Project A is not disturbed: its cache is intact and nothing needs fetching.
    again = render({"url": git_servers.http_url(private_repo["name"]), "ref": {"commit": commit}, "path": "deploy",
                    "username": git_servers.username, "password": git_servers.password, "cache_dir": cache,
                    "dest": str(tmp_path / "a.yaml")})
    assert again["fetched"] is False and again["changed"] is False


# -- 17.11: no local repositories unless the operator allows them; no other transports ------------------------------

def test_local_repositories_are_refused_unless_allowed(private_repo, git_servers, tmp_path):
    bare = os.path.join(git_servers.repos_dir, private_repo["name"] + ".git")
    for index, url in enumerate((bare, "file://" + bare)):
        cache, dest = tmp_path / ("cache-%d" % index), tmp_path / "local.yaml"
        result = render({"url": url, "path": "deploy", "cache_dir": str(cache), "dest": str(dest)})
        assert result["failed"] is True, result
        assert "allow_local_urls" in result["msg"] and url in result["msg"]
        assert not dest.exists()
        assert not cache.exists() or not [n for n in os.listdir(str(cache)) if not n.startswith(".")]
        allowed = render({"url": url, "path": "deploy", "cache_dir": str(cache), "dest": str(dest),
                          "allow_local_urls": True})
        assert allowed.get("failed") is not True, allowed
        assert allowed["commit"] == private_repo["commit"]
        dest.unlink()


def test_remote_helpers_and_git_protocol_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    for url, message in (("ext::sh -c touch% " + str(marker), "git remote helper (ext::)"),
                         ("fd::17", "git remote helper (fd::)"),
                         ("git://127.0.0.1/repo.git", "neither authenticated nor encrypted"),
                         ("git@-oProxyCommand=x:repo", "starts with '-'")):
        for allow in (False, True):
            result = render({"url": url, "cache_dir": str(tmp_path / "cache"), "dest": str(tmp_path / "b.yaml"),
                             "allow_local_urls": allow})
            assert result["failed"] is True, result
            assert message in result["msg"], result["msg"]
    assert not marker.exists()


def test_git_itself_refuses_a_transport_that_is_not_allowed(private_repo, git_servers, tmp_path):
    """The second line of defence: GIT_ALLOW_PROTOCOL, for what could reach git another way (a redirect,
    a remote the URL check did not see)."""
    bare = os.path.join(git_servers.repos_dir, private_repo["name"] + ".git")
    source = GitSource(git_servers.http_url(private_repo["name"]), cache_dir=str(tmp_path / "cache"))
    source.url = "file://" + bare  # as if the URL check had been passed
    with pytest.raises(FederationError) as err:
        with source.checkout({"commit": private_repo["commit"]}):
            pass
    assert "transport 'file' not allowed" in err.value.msg
    assert "allow_local_urls" in err.value.msg


# -- 17.12: kustomize without the controller's environment, no remote bases ------------------------------------------

@pytest.mark.parametrize("path,file,entry", [
    ("remote-url", "remote-url/kustomization.yaml",
     "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1"),
    ("remote-scp", "remote-scp/kustomization.yaml", "git@github.com:org/repo//base?ref=main"),
    ("overlay", "nested-remote/kustomization.yaml", "gh:org/repo/components/x"),
])
def test_remote_kustomize_bases_are_refused_naming_the_file(private_repo, git_servers, tmp_path, path, file, entry):
    dest = tmp_path / "b.yaml"
    result = render({"url": git_servers.http_url(private_repo["name"]), "path": path,
                     "username": git_servers.username, "password": git_servers.password,
                     "cache_dir": str(tmp_path / "cache"), "dest": str(dest)})
    assert result["failed"] is True, result
    assert "%s refers to the remote" % file in result["msg"], result["msg"]
    assert repr(entry) in result["msg"]
    assert result["file"] == file
    assert not dest.exists()


@pytest.fixture
def operator_environment(monkeypatch, git_servers, tmp_path):
    """A controller whose user has everything a source could borrow: a git credential helper that knows the
    git server's password (configured in ~/.gitconfig and in GIT_CONFIG_* variables), a ~/.netrc with it
    (curl, and so git over HTTP, reads it), an SSH agent socket and tokens in the environment."""
    home = tmp_path / "operator-home"
    home.mkdir()
    helper = "!f() { echo username=%s; echo password=%s; }; f" % (git_servers.username, git_servers.password)
    (home / ".gitconfig").write_text('[credential]\n\thelper = "%s"\n' % helper.replace('"', '\\"'))
    (home / ".netrc").write_text("machine 127.0.0.1 login %s password %s\n" % (git_servers.username,
                                                                             git_servers.password))
    (home / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "credential.helper")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", helper)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
    monkeypatch.setenv("GITHUB_TOKEN", "operator-token")
    return home


def test_kustomize_cannot_borrow_the_controllers_credentials(git_servers, tmp_path, monkeypatch,
                                                            operator_environment):
    """Even a remote base that got past the check (simulated here) cannot be fetched: kustomize runs with a
    private HOME, without the controller's GIT_* variables and with no git transport allowed."""
    base_repo = unique_name("remote-base")
    git_servers.create_repo(base_repo, files={"base/kustomization.yaml": "resources:\n  - cm.yaml\n",
                                              "base/cm.yaml": cm("borrowed")})
    checkout = tmp_path / "checkout"
    (checkout / "app").mkdir(parents=True)
    remote = "%s//base?ref=main" % git_servers.http_url(base_repo)
    (checkout / "app" / "kustomization.yaml").write_text("resources:\n  - %s\n" % remote)
    monkeypatch.setattr(render_module, "_REMOTE_REFERENCE_RE", render_module.re.compile(r"^(?!)"), raising=False)
    seen = []
    original = subprocess.Popen

    def recording(argv, **kwargs):
        seen.append((list(argv), dict(kwargs.get("env") or os.environ)))
        return original(argv, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording)  # process.run_bounded starts kustomize
    with pytest.raises(FederationError) as err:
        render_directory(str(checkout), "app")
    assert "kustomize build app failed" in err.value.msg
    assert "borrowed" not in err.value.msg
    [(argv, env)] = [(a, e) for a, e in seen if "build" in a]
    assert argv[1:4] == ["build", "--load-restrictor", "LoadRestrictionsRootOnly"]
    assert env["HOME"] != str(operator_environment) and not os.path.exists(env["HOME"])  # private, removed
    assert "SSH_AUTH_SOCK" not in env and "GITHUB_TOKEN" not in env
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_TERMINAL_PROMPT"] == "0" and "GIT_CONFIG_COUNT" not in env
    assert env["GIT_ALLOW_PROTOCOL"] == "none"


def test_git_does_not_use_the_controllers_credentials(private_repo, git_servers, tmp_path, operator_environment):
    """A source without credentials gets none from the controller's user (helpers, ~/.netrc)."""
    source = GitSource(git_servers.http_url(private_repo["name"]), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FederationError) as err:
        with source.checkout({"commit": private_repo["commit"]}):
            pass
    assert "the server asks for credentials" in err.value.msg


# -- 17.14: caFile supplies the CA of an HTTPS server -----------------------------------------------------------------

def test_https_with_a_private_ca_needs_ca_file(private_repo, git_servers, tmp_path):
    common = {"url": git_servers.https_url(private_repo["name"]), "path": "deploy",
              "cache_dir": str(tmp_path / "cache"), "dest": str(tmp_path / "b.yaml")}
    refused = render(dict(common, username=git_servers.username, password=git_servers.password))
    assert refused["failed"] is True
    assert "certificate" in refused["msg"] and "ca_file" in refused["msg"], refused["msg"]
    assert not os.path.exists(common["dest"])

    trusted = render(dict(common, username=git_servers.username, password=git_servers.password,
                          ca_file=read(git_servers.ca_cert)))
    assert trusted.get("failed") is not True, trusted
    assert trusted["commit"] == private_repo["commit"]

    # the key of a federated secret, as gitops_source_info hands it over
    from_secret = render(dict(common, secret_data={"username": git_servers.username,
                                                   "password": git_servers.password,
                                                   "caFile": read(git_servers.ca_cert)}))
    assert from_secret.get("failed") is not True, from_secret
    assert from_secret["commit"] == private_repo["commit"] and from_secret["changed"] is False
    assert not [p for p in files_under(str(tmp_path / "cache")) if p.endswith("ca.pem")]  # removed afterwards


def files_under(directory):
    for top, _, filenames in os.walk(directory):
        for filename in filenames:
            yield os.path.join(top, filename)


# -- 17.15: credential files private, and a killed run's removed by the next one ------------------------------------

KILLED_RUN = textwrap.dedent("""
    import os, sys, time
    from ansible_collections.gitops.federation.plugins.module_utils.source.git_fetch import GitCredentials, GitSource
    os.umask(0)  # the files must be private whatever the umask
    url, key, known_hosts, cache = sys.argv[1:5]
    source = GitSource(url, GitCredentials(ssh_private_key=open(key).read(), known_hosts=open(known_hosts).read()),
                       cache_dir=cache)
    original = source._git

    def hang(args, **kwargs):
        if args[0] == "ls-remote":
            print(source._env["GIT_SSH_COMMAND"], flush=True)
            time.sleep(600)  # killed here, while git would run with the key on disk
        return original(args, **kwargs)

    source._git = hang
    with source.checkout({"branch": "main"}):
        pass
""")


def test_a_killed_runs_key_is_private_and_removed_by_the_next_run(private_repo, git_servers, tmp_path):
    cache = str(tmp_path / "cache")
    credentials = os.path.join(cache, ".credentials")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, git_servers.ssh_url(private_repo["name"]),
                              git_servers.deploy_key, git_servers.known_hosts, cache],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = child.stdout.readline()
        assert line, child.stderr.read()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    [left] = os.listdir(credentials)
    left_dir = os.path.join(credentials, left)
    key_file = os.path.join(left_dir, "identity")
    assert read(key_file) == read(git_servers.deploy_key)  # what a killed run leaves behind...
    for path in (cache, credentials, left_dir):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, path
    for name in os.listdir(left_dir):  # ...is readable by its owner only, even with umask 0
        assert stat.S_IMODE(os.stat(os.path.join(left_dir, name)).st_mode) & 0o077 == 0, name

    # A run that is still going keeps its directory; the killed one's is removed by the next run.
    alive_dir = os.path.join(credentials, "%d-%s-running" % (os.getpid(), private_dirs.process_start_time(os.getpid())))
    os.mkdir(alive_dir, 0o700)
    result = render({"url": git_servers.ssh_url(private_repo["name"]), "path": "deploy",
                     "ssh_private_key": read(git_servers.deploy_key), "known_hosts": read(git_servers.known_hosts),
                     "cache_dir": cache, "dest": str(tmp_path / "b.yaml")})
    assert result.get("failed") is not True, result
    assert not os.path.exists(left_dir)
    assert os.listdir(credentials) == [os.path.basename(alive_dir)]


# -- secrets never in argv ------------------------------------------------------------------------------------------

class ProcessWatcher:
    """Samples the command line of every process of this user while git runs (the real process list)."""

    def __init__(self):
        self.cmdlines = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        uid = os.getuid()
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    if os.stat("/proc/" + pid).st_uid != uid:
                        continue
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        argv = handle.read().split(b"\0")
                except OSError:
                    continue
                self.cmdlines[(pid, argv[0])] = b" ".join(argv).decode("utf-8", "replace")
            time.sleep(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_no_secret_in_any_process_arguments(private_repo, git_servers, tmp_path, monkeypatch):
    key = read(git_servers.deploy_key)
    token = "token-" + unique_name("bearer")
    built = []
    original = subprocess.Popen

    def recording(argv, **kwargs):
        built.append(list(argv))
        return original(argv, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording)  # process.run_bounded starts git
    sources = [
        (git_servers.http_url(private_repo["name"]),
         GitCredentials(username=git_servers.username, password=git_servers.password)),
        (git_servers.https_url(private_repo["name"]),
         GitCredentials(username=git_servers.username, password=git_servers.password,
                        ca_file=read(git_servers.ca_cert))),
        (git_servers.ssh_url(private_repo["name"]),
         GitCredentials(ssh_private_key=key, known_hosts=read(git_servers.known_hosts))),
        (git_servers.http_url(private_repo["name"]), GitCredentials(bearer_token=token)),
    ]
    with ProcessWatcher() as watcher:
        for index, (url, credentials) in enumerate(sources):
            source = GitSource(url, credentials, cache_dir=str(tmp_path / ("cache-%d" % index)))
            try:
                with source.checkout({"commit": private_repo["commit"]}) as checkout:
                    assert checkout.commit == private_repo["commit"]
            except FederationError as err:
                assert index == 3 and "credentials" in err.msg  # the server knows no bearer tokens
    commands = [" ".join(argv) for argv in built]
    assert any(c.startswith("git ls-remote") for c in commands) and any(c.startswith("git fetch") for c in commands)
    seen = list(watcher.cmdlines.values())
    assert any("git-remote-http" in c or "ls-remote" in c for c in seen), seen  # the watcher saw git run
    assert any(c.startswith("ssh ") for c in seen), seen
    for secret in [git_servers.password, token] + key_body_lines(key):
        for command in commands + seen:
            assert secret not in command, command

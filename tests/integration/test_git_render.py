"""git_render against the real HTTP (basic auth) and SSH (deploy key) git servers and the real kustomize.

Every test runs the module through ansible-playbook, except the two that watch the credential files while git
runs, which drive the engine in-process against the same real servers.
"""

import base64
import fcntl
import glob
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile

import pytest
import yaml

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.source.git_fetch import GitCredentials, GitSource, cache_key
from kube import unique_name
from playbook import run_module, run_playbook

MODULE = "gitops.federation.git_render"


def cm(name, **data):
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})


def read(path):
    with open(path) as handle:
        return handle.read()


def render(args, **kwargs):
    result, _ = run_module(MODULE, args, **kwargs)
    return result


def bundle_objects(result):
    with open(result["bundle"]) as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def names(result):
    return [obj["metadata"]["name"] for obj in bundle_objects(result)]


def git_server(*args, cwd):
    """Server-side git for test setup (annotated tags), run directly in the bare repository."""
    subprocess.run(["git", "-c", "user.name=tests", "-c", "user.email=tests@example.invalid", *args], cwd=cwd,
                   check=True, capture_output=True)


# -- repositories -------------------------------------------------------------------------------------------

REPO_FILES = {
    "base/kustomization.yaml": "resources:\n  - deployment.yaml\n  - service.yaml\n",
    "base/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n"
        "    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n"),
    "base/service.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n"
        "  ports:\n    - port: 80\n"),
    "overlays/prod/kustomization.yaml": (
        "resources:\n  - ../../base\nnamePrefix: prod-\nlabels:\n  - pairs: {env: prod}\n"
        "patches:\n  - path: replicas.yaml\n"),
    "overlays/prod/replicas.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
    "plain/app.yaml": cm("first", k="1") + "---\n# nothing but a comment\n---\n" + cm("second", k="2") + "---\n",
    "plain/sub/third.json": json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "third"}}),
    "plain/README.md": "# not a manifest: [\n",
    "plain/.hidden/broken.yaml": "this: [is not read\n",
    "subst/app.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-${CLUSTER}\n"
        "data:\n  cluster: ${CLUSTER}\n  replicas: \"${REPLICAS:=2}\"\n  literal: $${CLUSTER}\n"),
    "broken/good.yaml": cm("good"),
    "broken/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  a: b\n  - c\n",
    "broken-kustomize/kustomization.yaml": "resources:\n  - missing-file.yaml\n",
    "invalid/no-name.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
    "release/version.yaml": cm("release", version="0.0.0"),
    "leaky/own.yaml": cm("own"),
    "kustomize-escape/kustomization.yaml": "resources:\n  - ../escape\n",
    "kustomize-leaky/kustomization.yaml": "resources:\n  - stolen.yaml\n",
}


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """A directory outside every checkout holding a manifest that must never be read."""
    directory = tmp_path_factory.mktemp("outside")
    (directory / "stolen.yaml").write_text(cm("stolen", data="from outside the repository"))
    return directory


@pytest.fixture(scope="module")
def repo(git_servers, tmp_path_factory, outside):
    """A repository with kustomize, plain, broken and escaping paths, and tags for every ref test."""
    name = unique_name("apps")
    source = tmp_path_factory.mktemp("apps-src")
    for relative, text in REPO_FILES.items():
        path = source / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    os.symlink(str(outside), str(source / "escape"))  # a directory symlink leaving the repository
    os.symlink(str(outside / "stolen.yaml"), str(source / "leaky" / "stolen.yaml"))  # a file symlink leaving it
    os.symlink(str(outside / "stolen.yaml"), str(source / "kustomize-leaky" / "stolen.yaml"))
    git_servers.create_repo(name, source_dir=str(source))
    bare = os.path.join(git_servers.repos_dir, name + ".git")
    tags = {}
    for tag in ("v1.0.0", "v1.2.0", "1.5.0", "v1.6.0-rc.1", "v2.0.0"):
        sha = git_servers.commit(name, files={"release/version.yaml": cm("release", version=tag)},
                                 message="release " + tag)
        if tag == "1.5.0":
            git_server("tag", "-a", "-m", "annotated release", tag, sha, cwd=bare)  # peeled by ls-remote
        else:
            git_servers.tag(name, tag, sha)
        tags[tag] = sha
    head = git_servers.commit(name, files={"release/version.yaml": cm("release", version="main")},
                              message="after the last release")
    return {"name": name, "head": head, "tags": tags, "bare": bare}


@pytest.fixture
def fresh_repo(git_servers):
    """A small repository of its own, for tests that push to it."""
    name = unique_name("moving")
    sha = git_servers.create_repo(name, files={"deploy/a.yaml": cm("a", v="1")})
    return {"name": name, "head": sha}


@pytest.fixture
def http(git_servers, tmp_path):
    def args(repo_name, **extra):
        base = {"url": git_servers.http_url(repo_name), "username": git_servers.username,
                "password": git_servers.password, "cache_dir": str(tmp_path / "cache"),
                "dest": str(tmp_path / "out" / "bundle.yaml")}
        base.update(extra)
        return base
    return args


@pytest.fixture
def ssh(git_servers, tmp_path):
    def args(repo_name, **extra):
        base = {"url": git_servers.ssh_url(repo_name), "ssh_private_key": read(git_servers.deploy_key),
                "known_hosts": read(git_servers.known_hosts), "cache_dir": str(tmp_path / "cache"),
                "dest": str(tmp_path / "out" / "bundle.yaml")}
        base.update(extra)
        return base
    return args


def other_host_key_line(git_servers, tmp_path):
    """known_hosts naming the SSH server with a key that is not its own."""
    key = str(tmp_path / "impostor")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    host = read(git_servers.known_hosts).split()[0]
    key_type, key_data = read(key + ".pub").split()[:2]
    return "%s %s %s\n" % (host, key_type, key_data)


def secret_strings(git_servers):
    """Every form of the test credentials that must never show up."""
    key_lines = [line for line in read(git_servers.deploy_key).splitlines() if line and not line.startswith("-----")]
    # The first body line is the same in every OpenSSH ed25519 key ("openssh-key-v1", cipher none...).
    key_lines = key_lines[1:]
    basic = base64.b64encode(("%s:%s" % (git_servers.username, git_servers.password)).encode()).decode()
    return [git_servers.password, basic] + key_lines


def files_under(directory):
    for top, _, filenames in os.walk(directory):
        for filename in filenames:
            path = os.path.join(top, filename)
            if not os.path.islink(path):
                yield path


def assert_no_secrets_in_dir(directory, secrets):
    for path in files_under(directory):
        with open(path, "rb") as handle:
            content = handle.read()
        for secret in secrets:
            assert secret.encode() not in content, "a credential is in %s" % path


def our_temp_dirs(cache):
    """The credential directories of runs on the clone cache ``cache`` (they live under it, not in /tmp)."""
    return set(glob.glob(os.path.join(cache, ".credentials", "*")))


# -- transports and credentials -----------------------------------------------------------------------------------

def test_http_basic_auth_clone_then_nothing_new_fetches_nothing(repo, http, tmp_path):
    first = render(http(repo["name"], ref={"branch": "main"}, path="plain"))
    assert first.get("failed") is not True, first
    assert first["revision"] == "main@sha1:" + repo["head"]
    assert first["commit"] == repo["head"] and first["ref"] == "main"
    assert first["fetched"] is True and first["changed"] is True
    assert first["objects"] == 3 and first["render_method"] == "plain"
    assert first["bundle"] == first["dest"] == str(tmp_path / "out" / "bundle.yaml")
    assert stat.S_IMODE(os.stat(first["bundle"]).st_mode) == 0o600
    assert first["cache"] == str(tmp_path / "cache" / cache_key(http(repo["name"])["url"]))
    # the cache remembers the URL without credentials only
    config = read(os.path.join(first["cache"], ".git", "config"))
    assert http(repo["name"])["url"] in config and "@" not in config

    second = render(http(repo["name"], ref={"branch": "main"}, path="plain"))
    assert second["revision"] == first["revision"] and second["digest"] == first["digest"]
    assert second["fetched"] is False and second["changed"] is False


def test_ssh_deploy_key_clone_of_the_default_branch(repo, ssh):
    result = render(ssh(repo["name"], path="plain"))
    assert result.get("failed") is not True, result
    assert result["revision"] == "main@sha1:" + repo["head"]
    assert names(result) == ["first", "second", "third"]


def test_ssh_host_key_check_can_be_turned_off_explicitly(repo, ssh):
    result = render(ssh(repo["name"], path="plain", known_hosts=None, insecure_skip_host_key_check=True))
    assert result.get("failed") is not True, result
    assert result["commit"] == repo["head"]


def test_wrong_password_fails_clearly_without_secrets(repo, http, git_servers):
    wrong = "wrong-" + unique_name("pw")
    result, run = run_module(MODULE, http(repo["name"], password=wrong))
    assert result["failed"] is True
    assert "Authentication failed" in result["msg"] and "check username and password" in result["msg"]
    assert http(repo["name"])["url"] in result["msg"]
    for secret in [wrong, git_servers.password]:
        assert secret not in run.output


def test_missing_credentials_say_so(repo, http):
    result = render(http(repo["name"], username=None, password=None))
    assert result["failed"] is True
    assert "set username and password" in result["msg"]


def test_unknown_host_key_fails_clearly_without_secrets(repo, ssh, git_servers, tmp_path):
    result, run = run_module(MODULE, ssh(repo["name"], known_hosts=other_host_key_line(git_servers, tmp_path)))
    assert result["failed"] is True
    assert "Host key verification failed" in result["msg"]
    assert "known_hosts" in result["msg"] and "insecure_skip_host_key_check" in result["msg"]
    for secret in secret_strings(git_servers):
        assert secret not in run.output


def test_bearer_token_is_sent_but_never_shown(repo, http, tmp_path):
    token = "token-" + unique_name("bearer")
    # the test server only knows basic auth, so it turns the bearer token down
    result, run = run_module(MODULE, http(repo["name"], username=None, password=None, bearer_token=token))
    assert result["failed"] is True and "set username and password" in result["msg"]
    assert token not in run.output
    assert_no_secrets_in_dir(str(tmp_path), [token])


def test_flux_secret_data_is_accepted(repo, git_servers, tmp_path):
    result = render({"url": git_servers.ssh_url(repo["name"]), "path": "plain", "cache_dir": str(tmp_path / "c"),
                     "dest": str(tmp_path / "b.yaml"),
                     "secret_data": {"identity": read(git_servers.deploy_key), "identity.pub": "ignored",
                                     "known_hosts": read(git_servers.known_hosts)}})
    assert result.get("failed") is not True, result
    assert result["objects"] == 3
    http_result = render({"url": git_servers.http_url(repo["name"]), "path": "plain",
                          "cache_dir": str(tmp_path / "c"), "dest": str(tmp_path / "b.yaml"),
                          "secret_data": {"username": git_servers.username, "password": git_servers.password}})
    assert http_result["commit"] == repo["head"] and http_result["changed"] is False


# -- refs ------------------------------------------------------------------------------------------------------------

def release_version(result):
    return [o for o in bundle_objects(result) if o["metadata"]["name"] == "release"][0]["data"]["version"]


def test_tag_ref(repo, http):
    result = render(http(repo["name"], ref={"tag": "v1.2.0"}, path="release"))
    assert result["revision"] == "v1.2.0@sha1:" + repo["tags"]["v1.2.0"]
    assert release_version(result) == "v1.2.0"


def test_annotated_tag_resolves_to_its_commit(repo, http):
    result = render(http(repo["name"], ref={"tag": "1.5.0"}, path="release"))
    assert result["commit"] == repo["tags"]["1.5.0"]
    assert release_version(result) == "1.5.0"


@pytest.mark.parametrize("semver,tag", [
    (">=1.2.0 <2.0.0", "1.5.0"),  # not v1.6.0-rc.1 (pre-release), not v2.0.0 (out of range)
    ("~1.2.0", "v1.2.0"),
    (">=1.6.0-0 <2.0.0", "v1.6.0-rc.1"),
    ("<1.0.0 || >=2.0.0", "v2.0.0"),
])
def test_semver_range_picks_the_right_tag(repo, http, semver, tag):
    result = render(http(repo["name"], ref={"semver": semver}, path="release"))
    assert result.get("failed") is not True, result
    assert result["revision"] == "%s@sha1:%s" % (tag, repo["tags"][tag])
    assert result["ref"] == tag
    assert release_version(result) == tag


def test_commit_ref_full_and_short(repo, http):
    sha = repo["tags"]["v1.0.0"]
    full = render(http(repo["name"], ref={"commit": sha}, path="release"))
    assert full["revision"] == "sha1:" + sha and full["ref"] == ""
    assert release_version(full) == "v1.0.0"
    short = render(http(repo["name"], ref={"commit": sha[:10]}, path="release"))
    assert short["commit"] == sha and short["fetched"] is False


@pytest.mark.parametrize("ref,message", [
    ({"branch": "no-such-branch"}, "branch 'no-such-branch' not found in"),
    ({"tag": "v9.9.9"}, "tag 'v9.9.9' not found in"),
    ({"semver": ">=3.0.0"}, "no tag of"),
    ({"commit": "0123456789abcdef0123456789abcdef01234567"}, "commit 0123456789abcdef0123456789abcdef01234567 not found"),
])
def test_missing_ref_fails_clearly(repo, http, ref, message):
    result = render(http(repo["name"], ref=ref, path="release"))
    assert result["failed"] is True
    assert message in result["msg"]
    assert http(repo["name"])["url"] in result["msg"]


def test_semver_failure_lists_the_tags_it_saw(repo, http):
    result = render(http(repo["name"], ref={"semver": ">=3.0.0"}))
    assert "v2.0.0" in result["msg"] and "1.5.0" in result["msg"]


def test_conflicting_ref_keys_are_refused(repo, http):
    result = render(http(repo["name"], ref={"branch": "main", "tag": "v1.0.0"}))
    assert result["failed"] is True and "mutually exclusive" in result["msg"]


# -- cache -------------------------------------------------------------------------------------------------------------

def test_new_commit_is_fetched_incrementally_and_changes_the_revision(fresh_repo, http, git_servers):
    args = http(fresh_repo["name"], path="deploy")
    first = render(args)
    assert first["revision"] == "main@sha1:" + fresh_repo["head"]
    marker = os.path.join(first["cache"], ".git", "kept-by-incremental-fetch")
    with open(marker, "w") as handle:
        handle.write("a re-clone would remove this file")

    new_sha = git_servers.commit(fresh_repo["name"], files={"deploy/b.yaml": cm("b")})
    second = render(args)
    assert second["revision"] == "main@sha1:" + new_sha != first["revision"]
    assert second["fetched"] is True and second["changed"] is True
    assert names(second) == ["a", "b"]
    assert os.path.exists(marker)  # the same clone, fetched into, not cloned again
    assert not second.get("warnings")

    third = render(args)
    assert third["fetched"] is False and third["changed"] is False and third["revision"] == second["revision"]


def test_files_left_in_the_checkout_do_not_leak_into_the_render(fresh_repo, http):
    args = http(fresh_repo["name"], path="deploy")
    first = render(args)
    with open(os.path.join(first["cache"], "deploy", "intruder.yaml"), "w") as handle:
        handle.write(cm("intruder"))
    with open(os.path.join(first["cache"], "deploy", "a.yaml"), "w") as handle:
        handle.write(cm("tampered"))
    again = render(args)
    assert names(again) == ["a"] and again["changed"] is False


@pytest.mark.parametrize("damage", ["stale index.lock", "stale ref lock", "broken HEAD", "no .git",
                                    "another URL"])
def test_locked_or_corrupt_cache_is_rebuilt(fresh_repo, http, damage):
    args = http(fresh_repo["name"], path="deploy")
    first = render(args)
    git_dir = os.path.join(first["cache"], ".git")
    if damage == "stale index.lock":
        open(os.path.join(git_dir, "index.lock"), "w").close()
    elif damage == "stale ref lock":
        os.makedirs(os.path.join(git_dir, "refs", "remotes", "origin"), exist_ok=True)
        open(os.path.join(git_dir, "refs", "remotes", "origin", "main.lock"), "w").close()
    elif damage == "broken HEAD":
        with open(os.path.join(git_dir, "HEAD"), "w") as handle:
            handle.write("garbage\n")
    elif damage == "no .git":
        shutil.rmtree(git_dir)
    else:
        subprocess.run(["git", "-C", first["cache"], "remote", "set-url", "origin", "http://127.0.0.1:1/x.git"],
                       check=True)
    again = render(args)
    assert again.get("failed") is not True, again
    assert again["revision"] == first["revision"] and again["fetched"] is True
    assert any("was rebuilt" in w for w in again.get("warnings", [])), again


def test_corrupt_objects_are_rebuilt(fresh_repo, http):
    args = http(fresh_repo["name"], path="deploy")
    first = render(args)
    # Destroy every object file and pack: the commit is gone although refs still name it.
    objects = os.path.join(first["cache"], ".git", "objects")
    for path in files_under(objects):
        os.chmod(path, 0o600)
        with open(path, "wb") as handle:
            handle.write(b"corrupt")
    again = render(args)
    assert again.get("failed") is not True, again
    assert again["revision"] == first["revision"] and names(again) == ["a"]
    assert any("was rebuilt because git failed in it" in w for w in again.get("warnings", [])), again


# -- rendering ---------------------------------------------------------------------------------------------------------

def test_kustomize_overlay_renders_base_and_patches(repo, http):
    result = render(http(repo["name"], path="overlays/prod", kustomize_path=shutil.which("kustomize")))
    assert result.get("failed") is not True, result
    assert result["render_method"] == "kustomize"
    objects = {o["kind"]: o for o in bundle_objects(result)}
    assert set(objects) == {"Deployment", "Service"}
    assert objects["Deployment"]["metadata"]["name"] == "prod-web"
    assert objects["Deployment"]["spec"]["replicas"] == 3
    assert objects["Service"]["metadata"]["labels"] == {"env": "prod"}
    base = render(http(repo["name"], path="base"))
    assert {o["metadata"]["name"] for o in bundle_objects(base)} == {"web"}
    assert base["changed"] is True and base["digest"] != result["digest"]


def test_kustomize_error_surfaces_its_stderr(repo, http):
    result = render(http(repo["name"], path="broken-kustomize"))
    assert result["failed"] is True
    assert "kustomize build broken-kustomize failed" in result["msg"]
    assert "missing-file.yaml" in result["msg"]


def test_plain_directory_with_multi_document_files(repo, http):
    result = render(http(repo["name"], path="plain"))
    assert names(result) == ["first", "second", "third"]
    assert result["digest"].startswith("sha256:")
    with open(result["bundle"], "rb") as handle:
        assert "sha256:" + hashlib.sha256(handle.read()).hexdigest() == result["digest"]


def test_substitution(repo, http):
    result = render(http(repo["name"], path="subst", substitute={"CLUSTER": "east"}))
    assert result.get("failed") is not True, result
    [obj] = bundle_objects(result)
    assert obj["metadata"]["name"] == "settings-east"
    assert obj["data"] == {"cluster": "east", "replicas": "2", "literal": "${CLUSTER}"}
    missing = render(http(repo["name"], path="subst", substitute={"OTHER": "x"}))
    assert missing["failed"] is True
    assert "CLUSTER" in missing["msg"] and "subst/app.yaml" in missing["msg"]


def test_yaml_error_reports_file_and_line(repo, http):
    result = render(http(repo["name"], path="broken"))
    assert result["failed"] is True
    assert "broken/bad.yaml line 7" in result["msg"]
    assert result["file"] == "broken/bad.yaml" and result["line"] == 7
    assert not os.path.exists(http(repo["name"])["dest"])  # nothing written


def test_object_without_name_is_refused(repo, http):
    result = render(http(repo["name"], path="invalid"))
    assert result["failed"] is True
    assert "invalid/no-name.yaml document 1" in result["msg"] and "metadata.name" in result["msg"]


@pytest.mark.parametrize("path,message", [
    ("../x", "path '../x' leaves the repository"),
    ("plain/../../..", "leaves the repository"),
    ("escape", "leaves the repository through the symlink escape"),
    ("leaky", "the symlink leaky/stolen.yaml points outside the repository"),
])
def test_paths_leaving_the_repository_are_refused(repo, http, path, message):
    result = render(http(repo["name"], path=path))
    assert result["failed"] is True
    assert message in result["msg"]
    assert "stolen" not in json.dumps({k: v for k, v in result.items() if k not in ("msg", "invocation", "path")})
    assert not os.path.exists(http(repo["name"])["dest"])


@pytest.mark.parametrize("path,message", [
    ("kustomize-escape", "kustomize-escape/kustomization.yaml refers to '../escape' in resources, outside the "
                         "repository"),
    ("kustomize-leaky", "the symlink kustomize-leaky/stolen.yaml points outside the repository"),
])
def test_kustomize_cannot_read_outside_the_repository(repo, http, path, message):
    result = render(http(repo["name"], path=path))
    assert result["failed"] is True
    assert message in result["msg"]


def test_escaping_symlinks_elsewhere_do_not_block_an_overlay(repo, http):
    # the repository has escaping symlinks ('escape', 'leaky'), but the overlay cannot reach them
    result = render(http(repo["name"], path="overlays/prod"))
    assert result.get("failed") is not True, result
    assert result["render_method"] == "kustomize"


def test_check_mode_writes_no_bundle_at_dest(repo, http):
    args = http(repo["name"], path="plain")
    result = render(args, check=True)
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert not os.path.exists(args["dest"])
    assert result["dest"] == args["dest"] and result["bundle"] != args["dest"]
    assert result["bundle"].startswith(tempfile.gettempdir())
    assert names(result) == ["first", "second", "third"]
    os.remove(result["bundle"])
    written = render(args)
    assert written["digest"] == result["digest"]
    again = render(args, check=True, diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"] == "ConfigMap/first\nConfigMap/second\nConfigMap/third\n"
    os.remove(again["bundle"])


# -- no credential anywhere ---------------------------------------------------------------------------------------------

def test_no_credentials_in_vvv_output_cache_or_temp_files(repo, git_servers, tmp_path):
    cache = str(tmp_path / "cache")
    before = our_temp_dirs(cache)
    wrong = "wrong-" + unique_name("pw")
    common = {"cache_dir": cache, "path": "plain"}
    tasks = [
        dict(common, url=git_servers.http_url(repo["name"]), username=git_servers.username,
             password=git_servers.password, dest=str(tmp_path / "http.yaml")),
        dict(common, url=git_servers.http_url(repo["name"]), username=git_servers.username, password=wrong,
             dest=str(tmp_path / "wrong.yaml")),
        dict(common, url=git_servers.ssh_url(repo["name"]), ssh_private_key=read(git_servers.deploy_key),
             known_hosts=read(git_servers.known_hosts), dest=str(tmp_path / "ssh.yaml")),
        dict(common, url=git_servers.ssh_url(repo["name"]), ssh_private_key=read(git_servers.deploy_key),
             known_hosts=other_host_key_line(git_servers, tmp_path), dest=str(tmp_path / "hostkey.yaml")),
        dict(common, url=git_servers.ssh_url(repo["name"]), dest=str(tmp_path / "secret_data.yaml"),
             secret_data={"identity": read(git_servers.deploy_key), "known_hosts": read(git_servers.known_hosts)}),
        dict(common, url=git_servers.http_url(repo["name"]), dest=str(tmp_path / "fail-render.yaml"),
             username=git_servers.username, password=git_servers.password, path="broken"),
    ]
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": [{"name": "render %d" % i, MODULE: args, "ignore_errors": True, "register": "r%d" % i}
                       for i, args in enumerate(tasks)]
             + [{"name": "show results", "ansible.builtin.debug": {"var": "r%d" % i}} for i in range(len(tasks))]}]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    # git's own tracing in the user's environment must not reach the git we run
    run = run_playbook(str(playbook), verbosity=3, callback="default",
                       env={"GIT_TRACE": "1", "GIT_CURL_VERBOSE": "1", "GIT_TRACE_CURL": "1",
                            "GIT_TRACE_REDACT": "0", "GIT_SSH_COMMAND": "ssh -vvv"})
    playbook.unlink()  # the playbook itself holds the credentials; only what ansible printed is under test
    output = run.output
    # the runs did what they should, so the scan covers real successes and failures
    assert output.count("Authentication failed") >= 1 and "Host key verification failed" in output
    assert "broken/bad.yaml line 7" in output
    assert os.path.exists(str(tmp_path / "http.yaml")) and os.path.exists(str(tmp_path / "ssh.yaml"))
    assert os.path.exists(str(tmp_path / "secret_data.yaml"))
    for secret in secret_strings(git_servers) + [wrong]:
        assert secret not in output, "a credential is in the -vvv output"
    assert_no_secrets_in_dir(cache, secret_strings(git_servers) + [wrong])
    assert_no_secrets_in_dir(str(tmp_path), secret_strings(git_servers) + [wrong])
    assert os.path.isdir(os.path.join(cache, ".credentials"))  # the runs did use it
    assert our_temp_dirs(cache) == before, "credential temp directories were left behind"


def spy_on_credential_files(source, seen):
    """Record, at every git command, the credential files that exist and their modes."""
    original = source._git

    def recording(args, **kwargs):
        files = {}
        for directory in our_temp_dirs(source.cache_dir):
            for path in files_under(directory):
                files[os.path.basename(path)] = (stat.S_IMODE(os.stat(path).st_mode), read(path))
        seen.append((args[0], files))
        return original(args, **kwargs)

    source._git = recording


def test_ssh_key_file_is_0600_while_git_runs_and_gone_after(repo, git_servers, tmp_path):
    key = read(git_servers.deploy_key)
    before = our_temp_dirs(str(tmp_path / "cache"))
    source = GitSource(git_servers.ssh_url(repo["name"]), GitCredentials(
        ssh_private_key=key, known_hosts=read(git_servers.known_hosts)), cache_dir=str(tmp_path / "cache"))
    seen = []
    spy_on_credential_files(source, seen)
    with source.checkout({"branch": "main"}) as checkout:
        assert checkout.commit == repo["head"]
        assert our_temp_dirs(source.cache_dir) == before  # already removed while the caller renders
    ls_remote = [files for command, files in seen if command == "ls-remote"][0]
    assert ls_remote["identity"] == (0o600, key)
    assert our_temp_dirs(source.cache_dir) == before

    failing = GitSource(git_servers.ssh_url(repo["name"]), GitCredentials(
        ssh_private_key=key, known_hosts=other_host_key_line(git_servers, tmp_path)),
        cache_dir=str(tmp_path / "cache"))
    seen = []
    spy_on_credential_files(failing, seen)
    with pytest.raises(FederationError) as err:
        with failing.checkout({"branch": "main"}):
            pass
    assert seen and "identity" in seen[0][1]
    assert "Host key verification failed" in err.value.msg
    assert our_temp_dirs(source.cache_dir) == before  # removed on failure too


def test_http_password_reaches_git_only_through_the_environment(repo, git_servers, tmp_path):
    """The askpass script on disk holds no secret; credentials in the URL are taken out of it."""
    url = git_servers.http_url(repo["name"]).replace("http://", "http://%s:%s@" % (git_servers.username,
                                                                                  git_servers.password))
    source = GitSource(url, cache_dir=str(tmp_path / "cache"))
    assert git_servers.password not in source.url
    seen = []
    spy_on_credential_files(source, seen)
    with source.checkout({"branch": "main"}) as checkout:
        assert checkout.commit == repo["head"]
    askpass_mode, askpass = seen[0][1]["askpass.sh"]
    assert askpass_mode == 0o700 and git_servers.password not in askpass
    assert_no_secrets_in_dir(str(tmp_path / "cache"), secret_strings(git_servers))


def test_engine_errors_carry_no_secret(repo, git_servers, tmp_path):
    """The engine's own messages are clean, before Ansible's no_log masking gets a chance."""
    wrong = "wrong-" + unique_name("pw")
    source = GitSource(git_servers.http_url(repo["name"]),
                       GitCredentials(username=git_servers.username, password=wrong),
                       cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FederationError) as err:
        with source.checkout({"branch": "main"}):
            pass
    assert "Authentication failed" in err.value.msg and wrong not in err.value.msg
    assert not os.path.exists(source.path)  # a refused fetch leaves no clone behind
    key = read(git_servers.deploy_key)
    source = GitSource(git_servers.ssh_url(repo["name"]), GitCredentials(
        ssh_private_key=key, known_hosts=other_host_key_line(git_servers, tmp_path)), cache_dir=str(tmp_path / "c"))
    with pytest.raises(FederationError) as err:
        with source.checkout(None):
            pass
    for secret in secret_strings(git_servers):
        assert secret not in err.value.msg and secret not in repr(err.value.details)


def test_concurrent_run_waits_for_the_cache_lock_then_times_out(fresh_repo, http):
    args = http(fresh_repo["name"], path="deploy", timeout=2)
    first = render(args)
    with open(first["cache"] + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another run is working on this repository
        blocked = render(args)
    assert blocked["failed"] is True
    assert "stayed locked by another run for 2s (option timeout)" in blocked["msg"]
    assert render(args)["revision"] == first["revision"]  # free again once the other run is done

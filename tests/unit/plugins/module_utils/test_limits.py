"""Limits on one source's repository and render (git_fetch.Limits; render.py; GitSource._check_tree).

Huge inputs are made cheaply: sparse files (a 1 GiB file costs no disk), and trees of 100,000 entries that all
point at one blob (git fast-import), so every test runs in seconds. git runs for real, on local repositories.
"""

import os
import subprocess
import time

import pytest
import yaml

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.source.git_fetch import (
    DEFAULT_LIMITS, LIMITS_ARG_SPEC, GitSource, Limits)
from ansible_collections.gitops.federation.plugins.module_utils.source.render import find_kustomize, render_directory

MIB = 1024 * 1024
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  k: v\n"


def sparse(path, size):
    with open(path, "wb") as handle:
        handle.truncate(size)


def test_defaults_and_validation():
    limits = Limits.from_option(None)
    assert (limits.max_files, limits.max_file_size, limits.max_render_size, limits.max_fetch_size) == (
        20000, 10 * MIB, 50 * MIB, 512 * MIB)
    assert Limits.from_option({"max_files": 5, "max_file_size": None}).max_file_size == DEFAULT_LIMITS["max_file_size"]
    with pytest.raises(FederationError, match="limits: unknown limit max_size"):
        Limits.from_option({"max_size": 1})
    with pytest.raises(FederationError, match=r"limits.max_files must be a positive integer"):
        Limits.from_option({"max_files": 0})


def test_a_1_gib_manifest_file_is_refused_without_being_read(tmp_path):
    (tmp_path / "small.yaml").write_text(CM % "a")
    sparse(str(tmp_path / "huge.yaml"), 1024 * MIB)
    started = time.monotonic()
    with pytest.raises(FederationError) as raised:
        render_directory(str(tmp_path), ".")
    assert time.monotonic() - started < 5
    message = raised.value.msg
    assert "huge.yaml" in message and "1073741824 bytes" in message, message
    assert "limits.max_file_size=10485760" in message and "gitops_limits.max_file_size" in message, message
    assert raised.value.details["limit"] == "limits.max_file_size"


def test_a_render_of_more_than_50_mib_is_refused_before_parsing(tmp_path):
    for index in range(6):  # 6 x 9 MiB: every file under the per-file limit, their sum over the render limit
        sparse(str(tmp_path / ("part-%d.yaml" % index)), 9 * MIB)
    started = time.monotonic()
    with pytest.raises(FederationError, match=r"the path \.: its manifest files have more than 52428800 bytes, "
                                              r"more than the limit limits.max_render_size=52428800"):
        render_directory(str(tmp_path), ".")
    assert time.monotonic() - started < 5


def test_too_many_manifest_files_are_refused(tmp_path):
    for index in range(6):
        (tmp_path / ("cm-%d.yaml" % index)).write_text(CM % ("cm-%d" % index))
    assert len(render_directory(str(tmp_path), ".", limits={"max_files": 6}).objects) == 6
    with pytest.raises(FederationError, match="6 manifest files, more than the limit limits.max_files=5"):
        render_directory(str(tmp_path), ".", limits={"max_files": 5})


def test_kustomize_output_past_the_render_limit_is_refused(tmp_path):
    try:
        find_kustomize()
    except FederationError:
        pytest.fail("kustomize is part of the test tooling (make tools)")
    big = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  k: %s\n" % ("x" * 20000)
    (tmp_path / "cm.yaml").write_text(big)
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\nnamePrefix: a-\n")
    assert len(render_directory(str(tmp_path), ".").objects) == 1
    with pytest.raises(FederationError, match=r"kustomize build \.: its output has more than 10000 bytes, more "
                                              r"than the limit limits.max_render_size=10000"):
        render_directory(str(tmp_path), ".", limits={"max_render_size": 10000})


# -- the repository: checked from the commit's tree, before checkout -------------------------------------------


def _git(cwd, *args, **kwargs):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(["git"] + list(args), cwd=cwd, env=env, check=True, capture_output=True, **kwargs)


def repository_with_files(tmp_path, count, size=len(CM % "same")):
    """A bare repository whose one commit has ``count`` files, all the same blob of ``size`` bytes."""
    bare = str(tmp_path / "repo.git")
    _git(str(tmp_path), "init", "-q", "--bare", "-b", "main", bare)
    blob = (CM % "same").ljust(size, "#").encode()
    lines = [b"blob", b"mark :1", b"data %d" % len(blob), blob,
             b"commit refs/heads/main", b"committer t <t@example.com> 0 +0000", b"data 2", b"c", b""]
    stream = b"\n".join(lines) + b"\n" + b"".join(
        b"M 100644 :1 d%03d/f%06d.yaml\n" % (i // 1000, i) for i in range(count)) + b"\n"
    _git(bare, "fast-import", "--quiet", input=stream)
    return bare


def checked_out_files(source):
    return [name for name in os.listdir(source.path) if name != ".git"] if os.path.isdir(source.path) else []


def test_a_repository_of_100000_files_is_refused_before_checkout(tmp_path):
    bare = repository_with_files(tmp_path, 100000)
    source = GitSource(bare, cache_dir=str(tmp_path / "cache"), allow_local_urls=True)
    started = time.monotonic()
    with pytest.raises(FederationError) as raised:
        with source.checkout({"branch": "main"}):
            pytest.fail("checked out")
    assert time.monotonic() - started < 60
    message = raised.value.msg
    assert "more than 20000 files, more than the limit limits.max_files=20000" in message, message
    assert bare in message
    assert checked_out_files(source) == [], "nothing may be checked out"


def test_a_file_over_max_file_size_in_the_repository_is_refused_before_checkout(tmp_path):
    bare = repository_with_files(tmp_path, 3, size=11 * MIB)
    source = GitSource(bare, cache_dir=str(tmp_path / "cache"), allow_local_urls=True)
    with pytest.raises(FederationError, match=r"the file d000/f000000.yaml has 11534336 bytes, more than the limit "
                                              r"limits.max_file_size=10485760"):
        with source.checkout({"branch": "main"}):
            pytest.fail("checked out")
    assert checked_out_files(source) == []
    raised = GitSource(bare, cache_dir=str(tmp_path / "cache"), allow_local_urls=True,
                       limits={"max_file_size": 12 * MIB})
    with raised.checkout({"branch": "main"}) as checkout:
        assert sorted(os.listdir(os.path.join(checkout.path, "d000"))) == ["f000000.yaml", "f000001.yaml",
                                                                           "f000002.yaml"]


def test_a_repository_within_the_limits_is_checked_out(tmp_path):
    bare = repository_with_files(tmp_path, 20)
    source = GitSource(bare, cache_dir=str(tmp_path / "cache"), allow_local_urls=True, limits={"max_files": 20})
    with source.checkout({"branch": "main"}) as checkout:
        assert len(os.listdir(os.path.join(checkout.path, "d000"))) == 20
    with pytest.raises(FederationError, match="limits.max_files=19"):
        with GitSource(bare, cache_dir=str(tmp_path / "cache"), allow_local_urls=True,
                       limits={"max_files": 19}).checkout({"branch": "main"}):
            pytest.fail("checked out")


def test_the_limits_option_is_specified_and_documented_once_for_both_modules():
    import kubernetes  # noqa: F401  the real library first: sync_plan's light import then leaves this process alone
    from ansible_collections.gitops.federation.plugins.doc_fragments.limits import ModuleDocFragment
    from ansible_collections.gitops.federation.plugins.modules import git_render, sync_plan

    assert LIMITS_ARG_SPEC["limits"]["options"] == dict((name, dict(type="int", default=value))
                                                        for name, value in DEFAULT_LIMITS.items())
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]["limits"]
    assert dict((name, option["default"]) for name, option in documented["suboptions"].items()) == DEFAULT_LIMITS
    for module in (git_render, sync_plan):
        assert module.argspec()["limits"] is LIMITS_ARG_SPEC["limits"], module.__name__
        doc = yaml.safe_load(module.DOCUMENTATION)
        assert "gitops.federation.limits" in doc["extends_documentation_fragment"], module.__name__
        assert "limits" not in doc["options"], "%s documents limits itself" % module.__name__


def repository_of_random_files(tmp_path, count, size):
    """A bare repository whose one commit has ``count`` files of ``size`` random bytes each: nothing compresses,
    so git's download is as large as the files."""
    bare = str(tmp_path / "random.git")
    _git(str(tmp_path), "init", "-q", "--bare", "-b", "main", bare)
    stream = b""
    for index in range(count):
        blob = os.urandom(size)
        stream += b"blob\nmark :%d\ndata %d\n" % (index + 1, len(blob)) + blob + b"\n"
    stream += b"commit refs/heads/main\ncommitter t <t@example.com> 0 +0000\ndata 2\nc\n"
    stream += b"".join(b"M 100644 :%d f%03d.bin\n" % (index + 1, index) for index in range(count)) + b"\n"
    _git(bare, "fast-import", "--quiet", input=stream)
    return bare


def files_of(directory):
    return [os.path.join(top, name) for top, unused, names in os.walk(directory) for name in names]


@pytest.mark.parametrize("count, size", [(1, 5 * MIB), (200, 20 * 1024)], ids=["one-big-object", "a-big-pack"])
def test_a_download_past_max_fetch_size_is_stopped_and_leaves_nothing_behind(tmp_path, count, size):
    """One 5 MiB object (git unpacks it as a loose object) or a pack of 200 objects of 20 KiB (git keeps it as a
    pack): git is stopped when it has written 1 MiB, the error names the limit, the partial download is removed."""
    bare = repository_of_random_files(tmp_path, count, size)
    source = GitSource(bare, cache_dir=str(tmp_path / "cache"), allow_local_urls=True, limits={"max_fetch_size": MIB})
    with pytest.raises(FederationError) as raised:
        with source.checkout({"branch": "main"}):
            pytest.fail("checked out")
    message = raised.value.msg
    assert "the download of %s: git received a pack or object of more than 1048576 bytes, more than the limit " \
           "limits.max_fetch_size=1048576" % bare in message, message
    assert "nothing was written or applied" in message and "gitops_limits.max_fetch_size" in message, message
    assert raised.value.details["limit"] == "limits.max_fetch_size"
    assert checked_out_files(source) == []
    left = [path for path in files_of(os.path.join(source.path, ".git", "objects"))
            if os.path.getsize(path) >= MIB or os.path.basename(path).startswith("tmp_")]
    assert left == [], "the partial download stayed on disk: %s" % left
    with GitSource(bare, cache_dir=str(tmp_path / "cache"), allow_local_urls=True).checkout(
            {"branch": "main"}) as checkout:  # the default limit, 512 MiB
        assert len([name for name in os.listdir(checkout.path) if name.endswith(".bin")]) == count

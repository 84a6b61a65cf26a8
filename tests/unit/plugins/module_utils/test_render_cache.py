# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The render cache of the sync (render_cache.py, sync_steps.render_sources): a source whose commit and render
inputs did not change is not checked out nor rendered again; anything that changes renders anew. Real git on
a local repository; the renderer is counted, not replaced."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.federation import sync_steps
from ansible_collections.gitops.federation.plugins.module_utils.source import render, render_cache


def git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git"] + list(args), cwd=cwd, env=env, check=True, stdout=subprocess.PIPE,
                          universal_newlines=True).stdout.strip()


def commit(repo, text):
    with open(os.path.join(repo, "app.yaml"), "w") as handle:
        handle.write(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    return git(repo, "rev-parse", "HEAD")


CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  level: ${LEVEL:=info}\n"


@pytest.fixture
def env(tmp_path, monkeypatch):
    repo = str(tmp_path / "repo")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, CONFIGMAP)
    calls = []
    real = render.render_directory

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "render_directory", counting)
    cache = str(tmp_path / "cache")
    options = dict(cache_dir=os.path.join(cache, "git"), allow_local_urls=True, scratch_dir=str(tmp_path / "scratch"))

    def run(substitute=None, check_mode=False, path="."):
        job = dict(namespace="team-a", source="app", key="team-a/app",
                   render=dict(id=0, url="file://" + repo, ref={"branch": "main"}, path=path, substitute=substitute))
        results, warnings = sync_steps.render_sources([job], {}, cache, "https://mgmt:6443", options, check_mode)
        assert not results[0].get("failed"), results[0]
        return results[0]

    return dict(repo=repo, calls=calls, run=run)


def test_an_unchanged_source_is_not_rendered_again(env):
    first = env["run"]()
    assert len(env["calls"]) == 1 and first["changed"]
    again = env["run"]()
    assert len(env["calls"]) == 1, "the second run rendered again"
    assert again["changed"] is False
    assert (again["revision"], again["digest"], again["bundle"]) == (first["revision"], first["digest"], first["bundle"])
    assert again["revision"].startswith("main@sha1:")


def test_a_new_commit_renders_anew(env):
    env["run"]()
    sha = commit(env["repo"], CONFIGMAP.replace("name: app", "name: app2"))
    result = env["run"]()
    assert len(env["calls"]) == 2
    assert result["changed"] and result["revision"] == "main@sha1:" + sha
    with open(result["bundle"]) as handle:
        assert "name: app2" in handle.read()


def test_changed_render_inputs_render_anew(env):
    env["run"]()
    result = env["run"](substitute={"LEVEL": "debug"})
    assert len(env["calls"]) == 2 and result["changed"]
    with open(result["bundle"]) as handle:
        assert "level: debug" in handle.read()
    env["run"](substitute={"LEVEL": "debug"})
    assert len(env["calls"]) == 2


def test_a_bundle_edited_on_disk_is_rendered_anew(env):
    first = env["run"]()
    with open(first["bundle"], "a") as handle:
        handle.write("# edited\n")
    result = env["run"]()
    assert len(env["calls"]) == 2
    with open(result["bundle"]) as handle:
        assert "# edited" not in handle.read()


def test_check_mode_always_renders_and_writes_no_stamp(env):
    result = env["run"](check_mode=True)
    env["run"](check_mode=True)
    assert len(env["calls"]) == 2
    assert not os.path.exists(render_cache.stamp_path(result["bundle"]))


def test_the_stamp_holds_no_input_value(env):
    result = env["run"](substitute={"LEVEL": "s3cret-value"})
    with open(render_cache.stamp_path(result["bundle"])) as handle:
        stamp = handle.read()
    assert "s3cret-value" not in stamp and "LEVEL" not in stamp
    assert oct(os.stat(render_cache.stamp_path(result["bundle"])).st_mode & 0o777) == "0o600"


def test_the_key_covers_every_input():
    base = dict(path=".", substitute={"A": "1"}, ignore=None)
    key = render_cache.stamp_key("a" * 40, base)
    assert render_cache.stamp_key("b" * 40, base) != key
    for change in (dict(path="deploy"), dict(substitute={"A": "2"}), dict(ignore="*.md"),
                   dict(limits={"max_files": 10})):
        assert render_cache.stamp_key("a" * 40, dict(base, **change)) != key, change
    assert render_cache.stamp_key("a" * 40, dict(base)) == key

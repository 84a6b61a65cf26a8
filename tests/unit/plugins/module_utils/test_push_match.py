# pylint: disable=disallowed-name  # "_" for values a test unpacks and ignores

import os

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.push_match import (
    check_push, clear_sync_start, covered_by, mark_sync_start, match_source, select_targets)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def push(ref="refs/heads/main", urls=("https://git.example/team/app.git", "git@git.example:team/app.git"),
         default_branch="main", received_at=1000.0):
    return {"ref": ref, "commit": COMMIT, "default_branch": default_branch, "received_at": received_at,
            "repository": {"urls": list(urls)}}


def source(name="app", ref=None, url="ssh://git@git.example:2222/Team/App.git", namespace="team-a", renders=None,
           **extra):
    view = dict(name=name, namespace=namespace, url=url, ref=ref or {}, suspended=False, terminating=False, errors=[],
                renders=renders if renders is not None else [dict(url=url, ref=ref or {})])
    view.update(extra)
    return view


@pytest.mark.parametrize("ref,pushed,expected", [
    ({"branch": "main"}, "refs/heads/main", True),
    ({"branch": "main"}, "refs/heads/feature", False),
    ({"branch": "main"}, "refs/tags/main", False),
    ({}, "refs/heads/main", True),  # the default branch
    ({}, "refs/heads/dev", False),
    ({"tag": "v1.0.0"}, "refs/tags/v1.0.0", True),
    ({"tag": "v1.0.0"}, "refs/tags/v1.0.1", False),
    ({"semver": ">=1.0.0 <2.0.0"}, "refs/tags/v1.4.2", True),
    ({"semver": ">=1.0.0 <2.0.0"}, "refs/tags/2.0.0", False),
    ({"semver": "^1.2"}, "refs/tags/1.9.0", True),
    ({"semver": ">=1.0.0"}, "refs/tags/v1.5.0-rc.1", False),  # pre-releases need a pre-release range
    ({"semver": ">=1.0.0"}, "refs/tags/release-candidate", False),
    ({"semver": ">=1.0.0"}, "refs/heads/main", False),
    ({"commit": COMMIT}, "refs/heads/main", False),
])
def test_ref_matching(ref, pushed, expected):
    matched, why = match_source(source(ref=ref), check_push(push(ref=pushed)))
    assert matched is expected, why


def test_unknown_default_branch_matches_no_ref_less_source():
    assert match_source(source(), check_push(push(default_branch=None)))[0] is False


def test_other_repository_is_left_out_entirely():
    targets, skipped = select_targets([source(url="https://git.example/team/other.git")], push())
    assert targets == [] and skipped == []


def test_same_repository_other_branch_is_skipped_with_a_reason():
    targets, skipped = select_targets([source(ref={"branch": "stable"})], push())
    assert targets == []
    assert skipped == [{"project": "team-a", "source": "app", "reason": "follows branch stable"}]


def test_an_override_that_changes_the_ref_on_one_cluster_counts():
    renders = [dict(url="https://git.example/team/app", ref={"branch": "stable"}),
               dict(url="https://git.example/team/app", ref={"branch": "main"})]
    view = source(ref={"branch": "stable"}, renders=renders)
    assert select_targets([view], push())[0] == [{"project": "team-a", "source": "app", "reason": "follows branch main"}]


def test_suspended_terminating_and_broken_sources_are_skipped():
    views = [source(name="a", ref={"branch": "main"}, suspended=True),
             source(name="b", ref={"branch": "main"}, terminating=True),
             source(name="c", ref={"branch": "main"}, errors=["FederatedGitRepository team-a/c does not exist"],
                    renders=[]),
             source(name="d", ref={"branch": "main"})]
    targets, skipped = select_targets(views, push())
    assert [t["source"] for t in targets] == ["d"]
    assert [(s["source"], s["reason"]) for s in skipped] == [
        ("a", "suspended"), ("b", "being torn down"), ("c", "FederatedGitRepository team-a/c does not exist")]


def test_several_sources_and_projects_of_one_repository():
    views = [source(name="app", ref={"branch": "main"}), source(name="app", namespace="team-b"),
             source(name="tagged", ref={"semver": "1.x"})]
    targets, _ = select_targets(views, push())
    assert [(t["project"], t["source"]) for t in targets] == [("team-a", "app"), ("team-b", "app")]


def test_a_sync_started_after_the_push_covers_it(tmp_path):
    marks = str(tmp_path)
    views = [source(ref={"branch": "main"})]
    assert len(select_targets(views, push(received_at=1000.0), marks)[0]) == 1
    mark_sync_start(marks, "team-a", "app", now=999.0)  # started before the push: not covered
    assert covered_by(marks, "team-a", "app", 1000.0) is None
    assert len(select_targets(views, push(received_at=1000.0), marks)[0]) == 1
    mark_sync_start(marks, "team-a", "app", now=1001.5)  # started after: covered
    targets, skipped = select_targets(views, push(received_at=1000.0), marks)
    assert targets == [] and "covered by the sync started at" in skipped[0]["reason"]
    assert len(select_targets(views, push(received_at=1002.0), marks)[0]) == 1  # a later push is not
    assert clear_sync_start(marks, "team-a", "app") is True
    assert len(select_targets(views, push(received_at=1000.0), marks)[0]) == 1
    assert not [f for f in os.listdir(os.path.join(marks, "team-a")) if f.endswith(".tmp")]


def test_mark_names_must_be_object_names(tmp_path):
    with pytest.raises(FederationError, match="not a Kubernetes object name"):
        mark_sync_start(str(tmp_path), "../etc", "app")


@pytest.mark.parametrize("bad,message", [
    ("nope", "push must be the gitops_push mapping"),
    ({"ref": "main", "commit": COMMIT, "repository": {"urls": ["https://a/b"]}}, "push.ref must be a full ref"),
    ({"ref": "refs/heads/main", "commit": "xyz", "repository": {"urls": ["https://a/b"]}}, "push.commit"),
    ({"ref": "refs/heads/main", "commit": COMMIT, "repository": {}}, "push.repository has no URL"),
])
def test_bad_push_is_refused_with_the_field_named(bad, message):
    with pytest.raises(FederationError, match=message):
        check_push(bad)

"""Issue 14.1: the per-cluster preview of a ref (playbooks/preview.yml) against real clusters and a real git server.

The preview runs the sync path in check mode with diff: nothing is written to any cluster (resourceVersions
unchanged), no Lease is taken, and the playbook's exit status plus the JSON summary tell no changes, changes and
error apart.
"""

import json
import os

import pytest

from test_playbooks import ATTACHED, MANAGEMENT, Env, failed, ok, playbook
from tools.localenv.inventory import EXAMPLE_APP


@pytest.fixture(scope="module")
def env(clusters, admin_clients, git_servers, tmp_path_factory):
    return Env(clusters, admin_clients, git_servers, str(tmp_path_factory.mktemp("preview")))


def leases(env, project):
    items = env.management.resources.get(api_version="coordination.k8s.io/v1", kind="Lease").get(
        namespace=project.namespace).to_dict()["items"]
    return sorted(item["metadata"]["name"] for item in items)


def run_preview(env, inventory, ref, tmp_path, name):
    paths = dict(preview_json=str(tmp_path / (name + ".json")), preview_markdown=str(tmp_path / (name + ".md")))
    run = playbook("preview", inventory, dict(paths, preview_ref=ref))
    summary = json.load(open(paths["preview_json"])) if os.path.exists(paths["preview_json"]) else None
    markdown = open(paths["preview_markdown"]).read() if os.path.exists(paths["preview_markdown"]) else None
    return run, summary, markdown


def test_preview_of_a_ref_lists_exactly_what_changes_per_cluster_and_writes_nothing(env, tmp_path):
    project = env.project("preview")
    inventory = project.inventory()
    ok(playbook("sources", inventory))
    ok(playbook("sync", inventory))
    # The pull request: LOG_LEVEL changes and the Service leaves the bundle.
    kustomization = open(os.path.join(EXAMPLE_APP, "base", "kustomization.yaml")).read()
    assert "  - service.yaml\n" in kustomization
    env.git.commit(project.repo, branch="pr-1", source_dir=EXAMPLE_APP, message="debug logs, no service", files={
        "base/configmap.yaml": open(os.path.join(EXAMPLE_APP, "base", "configmap.yaml")).read().replace(
            "LOG_LEVEL: info", "LOG_LEVEL: debug"),
        "base/kustomization.yaml": kustomization.replace("  - service.yaml\n", ""),
    })
    before = dict((host, project.resource_versions(host)) for host in ATTACHED)
    status_before = project.source()["status"]
    assert leases(env, project) == []

    run, summary, markdown = run_preview(env, inventory, "pr-1", tmp_path, "changes")
    # Changes: rc 2, the last task says so, the summary's outcome too.
    assert run.returncode == 2, run.output[-6000:]
    assert any(str(r.get("msg", "")).startswith("gitops preview: changes on") for r in run.results if r.get("failed"))
    assert summary["outcome"] == "changes" and summary["exit_code"] == 2, summary
    (source,) = summary["sources"]
    assert source["source"] == "%s/demo-app" % project.namespace and source["revision"].startswith("pr-1@sha1:")
    rows = dict((row["cluster"], row) for row in source["clusters"])
    assert sorted(rows) == sorted(ATTACHED)
    for host in ATTACHED:
        row = rows[host]
        assert row["outcome"] == "changes" and row["error"] is None
        assert row["created"] == [] and row["deleted"] == []
        assert row["pruned"] == ["Service/%s/demo-app" % project.namespace], row
        assert row["changed"] == [dict(subject="ConfigMap/%s/demo-app-settings" % project.namespace, recreated=False,
                                       fields=[dict(path="data.LOG_LEVEL", before="info", after="debug")])], row
    assert "`data.LOG_LEVEL`: `info` → `debug`" in markdown and "pruned `Service/%s/demo-app`" % project.namespace \
        in markdown

    # Nothing was written: the objects, the status, no Lease.
    assert dict((host, project.resource_versions(host)) for host in ATTACHED) == before
    assert project.source()["status"] == status_before
    assert leases(env, project) == []
    for host in ATTACHED:
        assert project.get(host, "v1", "Service", "demo-app") is not None

    # No changes: the branch the clusters already run; rc 0.
    run, summary, unused = run_preview(env, inventory, "main", tmp_path, "same")
    ok(run)
    assert summary["outcome"] == "no_changes" and summary["exit_code"] == 0, summary
    assert [row["outcome"] for row in summary["sources"][0]["clusters"]] == ["no_changes", "no_changes"]

    # Error: a ref that does not exist; the summary says error and names the source.
    run, summary, unused = run_preview(env, inventory, "no-such-branch", tmp_path, "error")
    failed(run)
    assert summary["outcome"] == "error" and summary["exit_code"] == 1, summary
    assert any("demo-app" in line for line in summary["errors"]), summary
    assert any(str(r.get("msg", "")).startswith("gitops preview: error") for r in run.results if r.get("failed"))
    assert dict((host, project.resource_versions(host)) for host in ATTACHED) == before
    assert leases(env, project) == []
    assert MANAGEMENT not in rows

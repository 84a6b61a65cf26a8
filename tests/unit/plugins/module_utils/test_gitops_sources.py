"""Unit tests of GitOps sources: desired objects from options, and per-cluster resolution for a sync."""

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.gitops_sources import (
    applied_clusters,
    desired_objects,
    duration_seconds,
    owned_suspend,
    source_view,
)
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import InventoryCluster

CLUSTERS = [InventoryCluster("a-1", {"env": "prod"}), InventoryCluster("a-2", {"env": "prod"}),
            InventoryCluster("a-3", {"env": "dev"})]


def pair(**options):
    options.setdefault("url", "https://git.example.com/apps.git")
    return desired_objects("podinfo", "team-a", **options)


def test_desired_pair_has_the_same_name_placement_and_a_source_ref():
    git, kustomization = pair(ref={"branch": "main", "tag": None}, path="deploy", secret="creds", timeout="2m",
                              substitute={"REPLICAS": 2, "DEBUG": True}, placement={"clusterSelector": {}},
                              health_checks=[{"kind": "Job", "api_version": "batch/v1", "current": "status.succeeded"}])
    assert git["kind"] == "FederatedGitRepository" and kustomization["kind"] == "FederatedKustomization"
    assert git["spec"]["template"]["spec"] == {"url": "https://git.example.com/apps.git", "scm": "github",
                                               "ref": {"branch": "main"}, "secretRef": {"name": "creds"},
                                               "timeout": "2m"}
    spec = kustomization["spec"]["template"]["spec"]
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": "podinfo"}
    assert spec["postBuild"] == {"substitute": {"REPLICAS": "2", "DEBUG": "true"}}
    assert spec["healthChecks"] == [{"apiVersion": "batch/v1", "kind": "Job", "current": "status.succeeded"}]
    assert (spec["prune"], spec["wait"], spec["force"], spec["path"]) == (True, False, False, "deploy")
    assert "suspend" not in spec
    assert git["spec"]["placement"] == kustomization["spec"]["placement"] == {"clusterSelector": {}}


def test_suspend_not_given_keeps_the_live_value():
    assert pair(live_suspend=True)[1]["spec"]["template"]["spec"]["suspend"] is True
    assert pair(suspend=False, live_suspend=True)[1]["spec"]["template"]["spec"]["suspend"] is False
    assert "suspend" not in pair(live_suspend=None)[1]["spec"]["template"]["spec"]


def test_only_a_suspend_value_we_applied_is_carried_over():
    def live(manager, operation="Apply", suspend=True):
        fields = {"f:spec": {"f:template": {"f:spec": {"f:suspend": {}}}}}
        return {"metadata": {"managedFields": [{"manager": manager, "operation": operation, "fieldsV1": fields}]},
                "spec": {"template": {"spec": {"suspend": suspend}}}}
    assert owned_suspend(live("gitops-federation-config"), "gitops-federation-config") is True
    assert owned_suspend(live("gitops-federation-config", suspend=False), "gitops-federation-config") is False
    assert owned_suspend(live("kubectl-patch", "Update"), "gitops-federation-config") is None
    defaulted = {"metadata": {"managedFields": []}, "spec": {"template": {"spec": {"suspend": False}}}}
    assert owned_suspend(defaulted, "gitops-federation-config") is None


def test_overrides_are_routed_to_the_object_they_patch():
    git, kustomization = pair(overrides=[{"clusterName": "a-2", "clusterOverrides": [
        {"path": "/spec/ref/branch", "value": "develop"},
        {"path": "/spec/path", "value": "overlays/dev"},
        {"path": "/spec/replicas", "value": 1, "target": {"kind": "Deployment", "name": "web"}}]}])
    assert git["spec"]["overrides"] == [{"clusterName": "a-2", "clusterOverrides": [
        {"op": "replace", "path": "/spec/ref/branch", "value": "develop"}]}]
    assert [op["path"] for op in kustomization["spec"]["overrides"][0]["clusterOverrides"]] == [
        "/spec/path", "/spec/replicas"]


def test_invalid_options_are_refused_with_the_source_named():
    with pytest.raises(FederationError, match="ref of source team-a/podinfo: give at most one of"):
        pair(ref={"branch": "main", "tag": "v1"})
    with pytest.raises(FederationError, match="timeout of source team-a/podinfo: '5 minutes' is not a duration"):
        pair(timeout="5 minutes")


def test_durations():
    assert duration_seconds("90s") == 90
    assert duration_seconds("1m30s") == 90
    assert duration_seconds("1h") == 3600
    assert duration_seconds("1500ms") == 2
    assert duration_seconds(None) == 300


def live(git_overrides=None, kustomization_overrides=None, placement=None, status=None, template_extra=None):
    git, kustomization = pair(ref={"branch": "main"}, path="overlays/prod", secret="creds",
                              substitute={"REPLICAS": "2"}, placement=placement or {"clusterSelector": {}})
    if git_overrides:
        git["spec"]["overrides"] = git_overrides
    if kustomization_overrides:
        kustomization["spec"]["overrides"] = kustomization_overrides
    kustomization["spec"]["template"]["spec"].update(template_extra or {})
    kustomization["metadata"]["generation"] = 4
    if status:
        kustomization["status"] = status
    return git, kustomization


def test_source_view_groups_clusters_by_render_inputs_and_lists_per_cluster_settings():
    git, kustomization = live(
        git_overrides=[{"clusterName": "a-3", "clusterOverrides": [{"op": "replace", "path": "/spec/ref/branch",
                                                                    "value": "develop"}]}],
        kustomization_overrides=[
            {"clusterName": "a-2", "clusterOverrides": [
                {"op": "replace", "path": "/spec/postBuild/substitute/REPLICAS", "value": "4"},
                {"op": "replace", "path": "/spec/replicas", "value": 4, "target": {"kind": "Deployment", "name": "web"}}]},
            {"clusterName": "a-3", "clusterOverrides": [{"op": "add", "path": "/spec/suspend", "value": True}]},
            {"clusterName": "ghost", "clusterOverrides": [{"op": "remove", "path": "/spec/path"}]}])
    view = source_view(kustomization, git, CLUSTERS)
    assert view["placed"] == ["a-1", "a-2", "a-3"] and view["errors"] == []
    assert view["unknown_clusters"] == ["ghost"]
    assert view["owner"] == "gitops/team-a/podinfo" and view["generation"] == 4
    assert [(r["ref"], r["substitute"], r["clusters"]) for r in view["renders"]] == [
        ({"branch": "main"}, {"REPLICAS": "2"}, ["a-1"]),
        ({"branch": "main"}, {"REPLICAS": "4"}, ["a-2"]),
        ({"branch": "develop"}, {"REPLICAS": "2"}, ["a-3"]),
    ]
    assert view["renders"][0]["secret"] == "creds" and view["renders"][0]["path"] == "overlays/prod"
    assert view["clusters"]["a-1"] == dict(render=0, namespace="team-a", prune=True, wait=False, wait_timeout=300,
                                           force_conflicts=False, health_checks=[], suspended=False, overrides=[])
    assert view["clusters"]["a-2"]["overrides"] == [{"op": "replace", "path": "/spec/replicas", "value": 4,
                                                     "target": {"kind": "Deployment", "name": "web"}}]
    assert view["clusters"]["a-3"]["suspended"] is True


def test_source_view_reports_unplaced_and_stale_clusters():
    git, kustomization = live(placement={"clusterSelector": {"matchLabels": {"env": "prod"}}},
                              status={"clusters": [{"name": "a-1", "status": "Applied"},
                                                   {"name": "a-3", "status": "Applied"}]})
    view = source_view(kustomization, git, CLUSTERS)
    assert view["placed"] == ["a-1", "a-2"]
    assert view["unplaced"] == ["a-3"]
    assert view["stale_clusters"] == ["a-3"]


def test_source_view_errors_instead_of_failing():
    git, kustomization = live(kustomization_overrides=[{"clusterName": "a-1", "clusterOverrides": [
        {"op": "replace", "path": "/spec/targetNamespace", "value": "other"}]}])
    view = source_view(kustomization, git, CLUSTERS)
    assert view["renders"] == [] and view["clusters"] == {}
    assert "path /spec/targetNamespace does not exist" in view["errors"][0]
    assert "FederatedKustomization team-a/podinfo overrides[clusterName=a-1]" in view["errors"][0]
    missing = source_view(kustomization, None, CLUSTERS)
    assert "FederatedGitRepository team-a/podinfo" in missing["errors"][0]


def test_target_namespace_and_timeout_reach_the_cluster_settings():
    git, kustomization = live(template_extra={"targetNamespace": "apps", "timeout": "2m", "wait": True})
    settings = source_view(kustomization, git, CLUSTERS)["clusters"]["a-1"]
    assert (settings["namespace"], settings["wait"], settings["wait_timeout"]) == ("apps", True, 120)


def test_applied_clusters():
    assert applied_clusters({"status": {"clusters": [{"name": "a", "status": "Applied"},
                                                     {"name": "b", "status": "Failed"}]}}) == ["a", "b"]
    assert applied_clusters(None) == []

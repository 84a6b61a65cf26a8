"""Unit tests of federated secrets: the desired objects and the Secrets propagated to one cluster."""

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.federated_secrets import (
    desired_federated_secret,
    secret_manifests_for_cluster,
    secret_status_results,
    secret_view,
)
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import InventoryCluster

DATA = {"username": "Z2l0", "password": "czNjcmV0"}


def federated(name, placement, overrides=None, template=None):
    obj = desired_federated_secret(name, "team-a", placement=placement, overrides=overrides, **(template or {}))
    obj["metadata"]["generation"] = 1
    return obj


def secret(name, secret_type="Opaque"):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "team-a"},
            "type": secret_type, "data": dict(DATA)}


def test_federated_secret_never_holds_data():
    obj = desired_federated_secret("git", "team-a", "kubernetes.io/basic-auth", {"app": "x"}, None,
                                   {"clusters": [{"name": "a-1"}]})
    assert obj["spec"] == {"template": {"metadata": {"labels": {"app": "x"}}, "type": "kubernetes.io/basic-auth"},
                           "placement": {"clusters": [{"name": "a-1"}]}}
    assert "data" not in obj["spec"]["template"] and "stringData" not in obj["spec"]["template"]


@pytest.mark.parametrize("operation,message", [
    ({"op": "add", "path": "/data/password", "value": "eA=="}, "overrides never carry secret values"),
    ({"op": "replace", "path": "/stringData", "value": {}}, "overrides never carry secret values"),
    ({"op": "replace", "path": "/metadata/name", "value": "other"}, "cannot be overridden"),
    ({"op": "add", "path": "/metadata/labels/x", "value": "y", "target": {"kind": "Secret", "name": "git"}},
     "target is not supported on a FederatedSecret"),
])
def test_secret_overrides_are_restricted(operation, message):
    with pytest.raises(FederationError, match=message):
        desired_federated_secret("git", "team-a", overrides=[{"clusterName": "a-1", "clusterOverrides": [operation]}])


def test_manifests_for_one_cluster_follow_placement_template_and_overrides():
    cluster = InventoryCluster("a-2", {"env": "prod"})
    federated_secrets = [
        federated("everywhere", {"clusterSelector": {}}, template={"labels": {"app": "x"}, "annotations": {"a": "b"}},
                  overrides=[{"clusterName": "a-2", "clusterOverrides": [
                      {"op": "add", "path": "/metadata/labels/region", "value": "eu"},
                      {"op": "remove", "path": "/data/password"}]}]),
        federated("prod-only", {"clusterSelector": {"matchLabels": {"env": "prod"}}},
                  template={"secret_type": "kubernetes.io/basic-auth"}),
        federated("elsewhere", {"clusters": [{"name": "a-1"}]}),
    ]
    secrets = dict((n, secret(n)) for n in ("everywhere", "prod-only", "elsewhere"))
    manifests, placed = secret_manifests_for_cluster(cluster, federated_secrets, secrets)
    assert placed == ["everywhere", "prod-only"]
    assert manifests[0] == {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                            "metadata": {"name": "everywhere", "labels": {"app": "x", "region": "eu"},
                                         "annotations": {"a": "b"}},
                            "data": {"username": "Z2l0"}}
    assert manifests[1]["type"] == "kubernetes.io/basic-auth" and manifests[1]["data"] == DATA
    assert "namespace" not in manifests[1]["metadata"]


def test_missing_management_secret_is_an_error_not_an_empty_bundle():
    with pytest.raises(FederationError, match="FederatedSecret team-a/git: its Secret team-a/git does not exist"):
        secret_manifests_for_cluster(InventoryCluster("a-1"), [federated("git", {"clusterSelector": {}})], {})


def test_secret_view_lists_key_names_only():
    view = secret_view(federated("git", {"clusters": [{"name": "a-1"}, {"name": "ghost"}]}), secret("git"),
                       [InventoryCluster("a-1"), InventoryCluster("a-2")])
    assert view["placed"] == ["a-1"] and view["unknown_clusters"] == ["ghost"]
    assert view["data_keys"] == ["password", "username"] and view["secret_exists"] is True
    assert "czNjcmV0" not in str(view) and "Z2l0" not in str(view)


def test_status_results_from_a_change_set():
    entries = [{"kind": "Secret", "name": "a", "action": "created"}, {"kind": "Secret", "name": "b", "action": "pruned"},
               {"kind": "Secret", "name": "c", "action": "unchanged"}]
    assert secret_status_results(entries, "a-1") == {
        "a": {"cluster": "a-1", "status": "Applied", "counts": {"created": 1}},
        "b": {"cluster": "a-1", "status": "Deleted", "counts": {"pruned": 1}},
        "c": {"cluster": "a-1", "status": "Applied", "counts": {"unchanged": 1}},
    }

"""Safety of the apply engine against real kube-apiservers (issue 17): owners that never collide, one owner
per object, kinds missing from discovery, an inventory keyed by owner, recreate on immutable fields, and drift
that counts only what we own.

cluster-1 is the management cluster (federated secrets), cluster-2 the attached cluster the engine writes to.
Every module runs through ansible-playbook; assertions read the clusters with the kubernetes client.
"""

import json
import time

import pytest
import yaml
from kubernetes.dynamic.exceptions import NotFoundError

from kube import ensure_namespace, get_or_none, unique_name
from playbook import run_module, run_playbook

MODULE = "gitops.federation.cluster_sync"
INVENTORY_LABEL = "gitops.federation/inventory"
OWNER = "gitops.federation/owner"


def configmap(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {"k": "v"}}


@pytest.fixture(scope="module")
def management(clusters):
    return clusters[0]


@pytest.fixture(scope="module")
def target(clusters):
    return clusters[1]


@pytest.fixture
def client(admin_clients, target):
    return admin_clients[target.name]


def sync(cluster, owner, namespace, manifests=None, expect_failure=False, **extra):
    params = dict(kubeconfig=cluster.kubeconfig, owner=owner, namespace=namespace)
    if manifests is not None:
        params["manifests"] = manifests
    params.update(extra)
    result, run = run_module(MODULE, params)
    if expect_failure:
        assert result.get("failed"), result
    else:
        assert not result.get("failed"), result.get("msg") or run.output[-3000:]
    return result


def inventories(client, owner):
    """Inventory ConfigMaps of an owner on the cluster, wherever they are: {namespace: entries}."""
    found = {}
    configmaps = client.resources.get(api_version="v1", kind="ConfigMap")
    for item in configmaps.get(label_selector=f"{INVENTORY_LABEL}=true").items:
        if item.data and item.data["owner"] == owner:
            found[item.metadata.namespace] = sorted(
                (e["kind"], e["namespace"], e["name"]) for e in json.loads(item.data["entries"]))
    return found


def actions(result):
    return {(e["kind"], e["name"]): e["action"] for e in result["change_set"]}


# -- 17.2: owners of different subject kinds never collide -------------------------------------------------------

@pytest.fixture(scope="module")
def crds_installed(management, tmp_path_factory):
    directory = tmp_path_factory.mktemp("crds")
    inventory = directory / "inventory.ini"
    inventory.write_text(f"management kubeconfig={management.kubeconfig} ansible_connection=local\n")
    playbook = directory / "crds.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "management", "gather_facts": False,
                                         "roles": [{"role": "gitops.federation.crds"}]}]))
    run = run_playbook(str(playbook), inventory=str(inventory))
    assert run.returncode == 0, run.output[-4000:]


def federated_secret(management, namespace, name, **extra):
    args = dict(kubeconfig=management.kubeconfig, namespace=namespace, name=name, string_data={"token": "s3cr3t"},
                clusters=["cluster-2"])
    args.update(extra)
    result, run = run_module("gitops.federation.federated_secret", args)
    assert not result.get("failed"), result.get("msg") or run.output[-3000:]


def propagate(management, cluster, namespace):
    args = dict(kubeconfig=cluster.kubeconfig, management={"kubeconfig": management.kubeconfig},
                namespace=namespace, cluster=cluster.name, cluster_labels={})
    result, run = run_module("gitops.federation.federated_secret_sync", args)
    assert not result.get("failed"), result.get("msg") or run.output[-3000:]
    return result


def test_a_source_named_federated_secrets_and_the_project_secrets_never_prune_each_other(
        crds_installed, management, target, client, namespace):
    federated_secret(management, namespace, "git-credentials")
    source_owner = f"gitops/{namespace}/federated-secrets"  # the owner id of a source named federated-secrets

    propagate(management, target, namespace)
    source = sync(target, source_owner, namespace, [configmap("app-settings")])
    assert actions(source) == {("ConfigMap", "app-settings"): "created"}, "the source must not prune the secret"
    again = propagate(management, target, namespace)
    assert again["counts"]["pruned"] == 0 and again["changed"] is False
    source = sync(target, source_owner, namespace, [configmap("app-settings")])
    assert source["changed"] is False

    assert get_or_none(client, "v1", "Secret", "git-credentials", namespace) is not None
    assert get_or_none(client, "v1", "ConfigMap", "app-settings", namespace) is not None
    found = inventories(client, f"gitops-secrets/{namespace}")
    assert found == {namespace: [("Secret", namespace, "git-credentials")]}
    assert inventories(client, source_owner) == {namespace: [("ConfigMap", namespace, "app-settings")]}


def test_an_inventory_of_the_old_secrets_owner_is_migrated_without_losing_or_orphaning_objects(
        crds_installed, management, target, client, namespace):
    legacy = f"gitops/{namespace}/federated-secrets"
    # What an earlier release left on the cluster: the same engine, under the old owner id, with one Secret
    # still federated and one whose FederatedSecret has since been deleted.
    kept = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git-credentials"}, "type": "Opaque",
            "data": {"token": "czNjcjN0"}}
    gone = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "retired"}, "type": "Opaque",
            "data": {"token": "b2xk"}}
    sync(target, legacy, namespace, [kept, gone])
    assert inventories(client, legacy) == {namespace: [("Secret", namespace, "git-credentials"),
                                                       ("Secret", namespace, "retired")]}
    federated_secret(management, namespace, "git-credentials")

    result = propagate(management, target, namespace)
    assert actions(result) == {("Secret", "git-credentials"): "configured", ("Secret", "retired"): "pruned"}
    adopted = get_or_none(client, "v1", "Secret", "git-credentials", namespace)
    assert adopted["metadata"]["annotations"][OWNER] == f"gitops-secrets/{namespace}"
    assert adopted["metadata"]["labels"][OWNER] == f"gitops-secrets.{namespace}"
    assert get_or_none(client, "v1", "Secret", "retired", namespace) is None, "the retired Secret is not orphaned"
    assert inventories(client, legacy) == {}, "the old inventory is replaced"
    assert inventories(client, f"gitops-secrets/{namespace}") == {namespace: [("Secret", namespace, "git-credentials")]}
    assert propagate(management, target, namespace)["changed"] is False


# -- 17.3: one owner per object --------------------------------------------------------------------------------

def test_an_object_of_another_source_is_refused_naming_both_and_nothing_is_written(target, client, namespace):
    first, second = f"gitops/{namespace}/first", f"gitops/{namespace}/second"
    sync(target, first, namespace, [configmap("shared", owner="first")])
    refused = sync(target, second, namespace, [configmap("second-only"), configmap("shared", owner="second")],
                   expect_failure=True)
    assert first in refused["msg"] and second in refused["msg"] and f"ConfigMap/{namespace}/shared" in refused["msg"]
    assert "nothing was applied" in refused["msg"]
    shared = get_or_none(client, "v1", "ConfigMap", "shared", namespace)
    assert shared["data"] == {"owner": "first"} and shared["metadata"]["annotations"][OWNER] == first
    assert get_or_none(client, "v1", "ConfigMap", "second-only", namespace) is None
    assert inventories(client, second) == {}
    # The first owner keeps syncing it without a flip.
    assert sync(target, first, namespace, [configmap("shared", owner="first")])["changed"] is False


def test_an_object_without_owner_is_still_adopted(target, client, namespace):
    client.resources.get(api_version="v1", kind="ConfigMap").create(
        namespace=namespace, body={"metadata": {"name": "handmade"}, "data": {"k": "old"}})
    result = sync(target, f"gitops/{namespace}/app", namespace, [configmap("handmade", k="old")])
    assert actions(result) == {("ConfigMap", "handmade"): "configured"}
    adopted = get_or_none(client, "v1", "ConfigMap", "handmade", namespace)
    assert adopted["data"] == {"k": "old"} and adopted["metadata"]["annotations"][OWNER] == f"gitops/{namespace}/app"


# -- 17.6: the inventory is keyed by owner --------------------------------------------------------------------

def test_changing_the_target_namespace_prunes_the_old_one_and_orphans_nothing(target, client, namespace):
    other = unique_name("t")
    ensure_namespace(client, other)
    owner = f"gitops/{namespace}/app"
    sync(target, owner, namespace, [configmap("a"), configmap("b")])
    moved = sync(target, owner, other, [configmap("a")])
    assert sorted((e["namespace"], e["name"], e["action"]) for e in moved["change_set"]) == sorted([
        (namespace, "a", "pruned"), (namespace, "b", "pruned"), (other, "a", "created")])  # random names: sort both
    assert get_or_none(client, "v1", "ConfigMap", "a", namespace) is None
    assert get_or_none(client, "v1", "ConfigMap", "b", namespace) is None
    assert inventories(client, owner) == {other: [("ConfigMap", other, "a")]}
    assert sync(target, owner, other, [configmap("a")])["changed"] is False


def test_teardown_after_a_per_cluster_namespace_override_deletes_what_is_there(target, client, namespace):
    override = unique_name("t")
    ensure_namespace(client, override)
    owner = f"gitops/{namespace}/app"
    sync(target, owner, override, [configmap("a"), configmap("b")])
    # A teardown that does not know the override asks in the project namespace: the inventory is found anyway.
    result = sync(target, owner, namespace, state="absent")
    assert result["changed"] is True and result["counts"]["deleted"] == 2
    assert f"deleted 2 objects of {owner}" in result["msg"] and override in result["msg"]
    assert get_or_none(client, "v1", "ConfigMap", "a", override) is None
    assert inventories(client, owner) == {}
    nothing = sync(target, owner, namespace, state="absent")
    assert nothing["changed"] is False and "nothing to delete" in nothing["msg"]


# -- 17.4: a kind missing from discovery is not a deleted object ----------------------------------------------

def widget_crd(group, served=True):
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"},
                 "versions": [{"name": "v1", "served": served, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
    }


def wait_for(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def served(client, group):
    client.resources.invalidate_cache()
    try:
        client.resources.get(api_version=f"{group}/v1", kind="Widget")
        return True
    except Exception:  # ResourceNotFoundError
        return False


def test_a_crd_kind_missing_from_discovery_keeps_its_inventory_entry(target, client, namespace):
    group = f"{namespace}.safety.test"
    crds = client.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crds.create(body=widget_crd(group))
    wait_for(lambda: served(client, group), "the Widget kind to be served")
    owner = f"gitops/{namespace}/app"
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 1}}
    sync(target, owner, namespace, [configmap("c"), widget])

    crds.patch(body=widget_crd(group, served=False), content_type="application/merge-patch+json")
    wait_for(lambda: not served(client, group), "the Widget kind to leave discovery")
    result = sync(target, owner, namespace, [configmap("c")])
    [entry] = [e for e in result["change_set"] if e["kind"] == "Widget"]
    assert entry["action"] == "failed"
    assert f"CustomResourceDefinition widgets.{group} still exists" in entry["message"]
    assert "kept in the inventory" in entry["message"]
    assert ("Widget", namespace, "w1") in inventories(client, owner)[namespace]
    teardown = sync(target, owner, namespace, state="absent", expect_failure=True)
    assert "teardown of %s incomplete" % owner in teardown["msg"] and "w1" in teardown["msg"]
    assert ("Widget", namespace, "w1") in inventories(client, owner)[namespace]

    # Served again: the next sync prunes it for real.
    crds.patch(body=widget_crd(group), content_type="application/merge-patch+json")
    wait_for(lambda: served(client, group), "the Widget kind to be served again")
    result = sync(target, owner, namespace, [configmap("c")])
    assert actions(result)[("Widget", "w1")] == "pruned"
    widgets = client.resources.get(api_version=f"{group}/v1", kind="Widget")
    with pytest.raises(NotFoundError):
        widgets.get(name="w1", namespace=namespace)


def test_a_kind_whose_crd_is_gone_is_dropped_from_the_inventory(target, client, namespace):
    group = f"{namespace}.gone.test"
    crds = client.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crds.create(body=widget_crd(group))
    wait_for(lambda: served(client, group), "the Widget kind to be served")
    owner = f"gitops/{namespace}/app"
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}}
    sync(target, owner, namespace, [configmap("c"), widget])
    crds.delete(name=f"widgets.{group}")
    wait_for(lambda: not served(client, group), "the Widget kind to leave discovery")
    wait_for(lambda: get_or_none(client, "apiextensions.k8s.io/v1", "CustomResourceDefinition",
                                 f"widgets.{group}") is None, "the CRD to be gone")
    result = sync(target, owner, namespace, [configmap("c")])
    assert result["counts"]["failed"] == 0
    assert inventories(client, owner) == {namespace: [("ConfigMap", namespace, "c")]}


def test_an_unavailable_aggregated_api_keeps_its_inventory_entries(target, client, namespace):
    """An APIService whose Service has no endpoints: the real kube-apiserver leaves its group out of discovery."""
    group = f"{namespace}.aggregated.test"
    services = client.resources.get(api_version="v1", kind="Service")
    services.create(namespace=namespace, body={"metadata": {"name": "backend"},
                                               "spec": {"ports": [{"port": 443, "targetPort": 8443}]}})
    api_services = client.resources.get(api_version="apiregistration.k8s.io/v1", kind="APIService")
    api_services.create(body={
        "metadata": {"name": f"v1.{group}"},
        "spec": {"group": group, "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15,
                 "insecureSkipTLSVerify": True, "service": {"namespace": namespace, "name": "backend", "port": 443}}})
    try:
        owner = f"gitops/{namespace}/app"
        sync(target, owner, namespace, [configmap("c"), configmap("d")])
        # An earlier sync applied a Flunder while the aggregated API was up: its inventory lists it.
        configmaps = client.resources.get(api_version="v1", kind="ConfigMap")
        [stored] = [i for i in configmaps.get(namespace=namespace, label_selector=f"{INVENTORY_LABEL}=true").items
                    if i.data["owner"] == owner]
        entries = json.loads(stored.data["entries"]) + [
            {"group": group, "kind": "Flunder", "namespace": namespace, "name": "f1", "apiVersion": f"{group}/v1"}]
        configmaps.patch(namespace=namespace, name=stored.metadata.name, content_type="application/merge-patch+json",
                         body={"data": {"entries": json.dumps(entries)}})

        result = sync(target, owner, namespace, [configmap("c")])
        assert actions(result)[("ConfigMap", "d")] == "pruned"
        [entry] = [e for e in result["change_set"] if e["kind"] == "Flunder"]
        assert entry["action"] == "failed" and f"aggregated API v1.{group}" in entry["message"], entry
        assert ("Flunder", namespace, "f1") in inventories(client, owner)[namespace]
    finally:
        api_services.delete(name=f"v1.{group}")


# -- 17.7: opt-in recreate on immutable fields ----------------------------------------------------------------

def job(image, force=False):
    obj = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
           "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "migrate", "image": image, "command": ["true"]}]}}}}
    if force:
        obj["metadata"]["annotations"] = {"gitops.federation/force": "enabled"}
    return obj


def test_an_immutable_change_is_refused_unless_the_object_asks_to_be_recreated(target, client, namespace):
    owner = f"gitops/{namespace}/app"
    sync(target, owner, namespace, [job("busybox:1.36")])
    first = get_or_none(client, "batch/v1", "Job", "migrate", namespace)

    refused = sync(target, owner, namespace, [configmap("other"), job("busybox:1.37")], expect_failure=True)
    assert "immutable" in refused["msg"] and "gitops.federation/force: enabled" in refused["msg"]
    assert f"Job.batch/{namespace}/migrate" in refused["msg"] and "nothing was applied" in refused["msg"]
    assert get_or_none(client, "v1", "ConfigMap", "other", namespace) is None
    assert get_or_none(client, "batch/v1", "Job", "migrate", namespace)["metadata"]["uid"] == first["metadata"]["uid"]

    recreated = sync(target, owner, namespace, [job("busybox:1.37", force=True)])
    assert actions(recreated) == {("Job", "migrate"): "recreated"}
    assert recreated["counts"]["recreated"] == 1 and recreated["changed"] is True
    now = get_or_none(client, "batch/v1", "Job", "migrate", namespace)
    assert now["metadata"]["uid"] != first["metadata"]["uid"]
    assert now["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.37"
    again = sync(target, owner, namespace, [job("busybox:1.37", force=True)])
    assert again["changed"] is False


# -- 17.9: drift counts only what we own ----------------------------------------------------------------------

def deployment(name):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "resources": {
                                  "requests": {"cpu": 0.5, "memory": "0.5Gi"}, "limits": {"cpu": 1, "memory": "1Gi"}}}]}}},
        "status": {},
    }


def assert_no_requests_but_reads(result):
    requests = result["api_requests"]
    assert result["changed"] is False and result["counts"]["unchanged"] >= 1, result["change_set"]
    assert requests["writes"] == 0 and not [verb for verb in requests if "dry run" in verb], requests


def test_normalised_quantities_and_status_updates_cost_no_dry_run_and_no_write(target, client, namespace):
    owner = f"gitops/{namespace}/app"
    bundle = [deployment("web"), {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "quota"},
                                  "spec": {"hard": {"requests.cpu": 2.5, "pods": 10}}}]
    assert sync(target, owner, namespace, bundle)["counts"]["created"] == 2
    stored = get_or_none(client, "apps/v1", "Deployment", "web", namespace)
    assert stored["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "500m"
    assert_no_requests_but_reads(sync(target, owner, namespace, bundle))
    assert_no_requests_but_reads(sync(target, owner, namespace, bundle))

    deployments = client.resources.get(api_version="apps/v1", kind="Deployment")
    status = deployments.subresources["status"]
    status.patch(namespace=namespace, name="web", content_type="application/merge-patch+json",
                 body={"status": {"observedGeneration": 99, "conditions": [
                     {"type": "Progressing", "status": "True", "reason": "Testing", "message": "status moved"}]}})
    assert_no_requests_but_reads(sync(target, owner, namespace, bundle))


# -- issue 10 item 4: no partial apply on a new namespace ----------------------------------------------------

def test_objects_in_a_new_namespace_are_validated_before_the_first_is_written(target, client):
    fresh = unique_name("new")
    owner = f"gitops/{fresh}/app"
    invalid = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"ports": [{"port": 70000}]}}
    refused = sync(target, owner, fresh, [configmap("first"), invalid], create_namespace=True, expect_failure=True)
    assert f"Service/{fresh}/web" in refused["msg"] and "nothing was applied" in refused["msg"]
    assert f"namespace {fresh}, created by this sync for validation, was deleted again" in refused["msg"]
    assert get_or_none(client, "v1", "ConfigMap", "first", fresh) is None
    namespace = get_or_none(client, "v1", "Namespace", fresh)
    assert namespace is None or namespace["metadata"].get("deletionTimestamp"), "the namespace is being deleted"

    other = unique_name("new")
    created = sync(target, f"gitops/{other}/app", other, [configmap("first")], create_namespace=True)
    assert created["changed"] is True and get_or_none(client, "v1", "ConfigMap", "first", other) is not None

"""The apply engine through the cluster_sync module, against real kube-apiservers."""

import json
import subprocess
import time

import pytest
import yaml
from kubernetes import client as k8s_client

from kube import dynamic_client, get_or_none, service_account_kubeconfig, unique_name
from playbook import run_module
from tools.localenv.binaries import binary

MODULE = "gitops.federation.cluster_sync"


def configmap(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def deployment(name, replicas=1, image="nginx:1.27"):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": image,
                                                       "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]}}},
    }


def secret(name, **string_data):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
            "stringData": string_data}


@pytest.fixture
def cluster(clusters):
    return clusters[0]


@pytest.fixture
def sync(cluster, namespace):
    """Run cluster_sync against cluster-1 in the test's namespace; returns the module result."""
    def run(manifests=None, check=False, diff=False, expect_failure=False, **args):
        params = dict(kubeconfig=cluster.kubeconfig, owner=f"gitops/{namespace}/app", namespace=namespace)
        if manifests is not None:
            params["manifests"] = manifests
        params.update(args)
        result, run_ = run_module(MODULE, params, check=check, diff=diff)
        if expect_failure:
            assert result.get("failed"), result
        else:
            assert not result.get("failed"), result.get("msg") or run_.output[-3000:]
        return result
    return run


def resource_versions(client, namespace):
    versions = {}
    for api_version, kind in (("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Secret")):
        for item in client.resources.get(api_version=api_version, kind=kind).get(namespace=namespace).items:
            versions[(kind, item.metadata.name)] = item.metadata.resourceVersion
    return versions


def test_create_then_rerun_is_a_noop_with_zero_writes(sync, admin_clients, cluster, namespace):
    bundle = [configmap("settings", level="info"), deployment("web"), secret("creds", token="t0ps3cret")]
    first = sync(bundle, revision="main@sha1:1111")
    assert first["changed"] is True
    assert first["counts"]["created"] == 3
    assert {e["subject"] for e in first["change_set"]} == {
        f"ConfigMap/{namespace}/settings", f"Deployment.apps/{namespace}/web", f"Secret/{namespace}/creds"}
    client = admin_clients[cluster.name]
    before = resource_versions(client, namespace)

    second = sync(bundle, revision="main@sha1:1111")
    assert second["changed"] is False
    assert second["counts"]["unchanged"] == 3 and second["summary"] == "unchanged 3"
    requests = second["api_requests"]
    assert requests["writes"] == 0, requests
    assert set(requests) == {"GET", "writes"}, "a no-op sync must not even dry-run: %s" % requests
    # Requests scale with kinds, not objects: 2 discovery, namespace, inventory, one LIST per kind.
    assert requests["GET"] == 2 + 1 + 1 + 3
    assert resource_versions(client, namespace) == before

    inventory = get_or_none(client, "v1", "ConfigMap", first["inventory"]["name"], namespace)
    assert inventory["data"]["revision"] == "main@sha1:1111"
    assert {e["name"] for e in json.loads(inventory["data"]["entries"])} == {"settings", "web", "creds"}


def test_change_one_object_configures_only_it(sync, namespace):
    sync([configmap("a", v="1"), configmap("b", v="1")])
    result = sync([configmap("a", v="2"), configmap("b", v="1")])
    assert result["changed"] is True
    actions = {e["name"]: e["action"] for e in result["change_set"]}
    assert actions == {"a": "configured", "b": "unchanged"}
    assert result["api_requests"]["PATCH"] == 1, "one object write (the inventory did not change)"


def test_removed_object_is_pruned_and_an_unrelated_one_survives(sync, admin_clients, cluster, namespace):
    client = admin_clients[cluster.name]
    client.resources.get(api_version="v1", kind="ConfigMap").create(
        namespace=namespace, body={"metadata": {"name": "not-ours"}, "data": {"keep": "me"}})
    sync([configmap("keep"), configmap("drop")])
    result = sync([configmap("keep")])
    assert {e["name"]: e["action"] for e in result["change_set"]} == {"keep": "unchanged", "drop": "pruned"}
    assert get_or_none(client, "v1", "ConfigMap", "drop", namespace) is None
    assert get_or_none(client, "v1", "ConfigMap", "not-ours", namespace)["data"] == {"keep": "me"}
    assert result["inventory"]["objects"] == 1


def test_prune_skips_objects_that_lost_our_owner_label(sync, admin_clients, cluster, namespace):
    client = admin_clients[cluster.name]
    sync([configmap("keep"), configmap("adopted-by-hand")])
    client.resources.get(api_version="v1", kind="ConfigMap").patch(
        namespace=namespace, name="adopted-by-hand", content_type="application/merge-patch+json",
        body={"metadata": {"labels": {"gitops.federation/owner": None}}})
    result = sync([configmap("keep")])
    skipped = [e for e in result["change_set"] if e["action"] == "skipped"]
    assert [e["name"] for e in skipped] == ["adopted-by-hand"]
    assert "no longer carries owner" in skipped[0]["message"]
    assert get_or_none(client, "v1", "ConfigMap", "adopted-by-hand", namespace) is not None


def test_prune_false_orphans(sync, admin_clients, cluster, namespace):
    sync([configmap("keep"), configmap("left")])
    result = sync([configmap("keep")], prune=False)
    assert {e["name"]: e["action"] for e in result["change_set"]}["left"] == "orphaned"
    assert get_or_none(admin_clients[cluster.name], "v1", "ConfigMap", "left", namespace) is not None


def test_bundle_with_a_crd_and_its_custom_resources(sync, admin_clients, cluster, namespace):
    group = f"{namespace}.example.test"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": {
                         "size": {"type": "integer"}}}}}}}]},
    }
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}
    first = sync([widget, crd], allow_cluster_scoped=True)
    assert {e["kind"]: e["action"] for e in first["change_set"]} == {
        "CustomResourceDefinition": "created", "Widget": "created"}
    live = get_or_none(admin_clients[cluster.name], f"{group}/v1", "Widget", "w1", namespace)
    assert live["spec"] == {"size": 3}
    second = sync([widget, crd], allow_cluster_scoped=True)
    assert second["changed"] is False and second["api_requests"]["writes"] == 0


def test_check_mode_writes_nothing_and_reports_what_it_would_do(sync, admin_clients, cluster, namespace):
    sync([configmap("existing", v="1"), configmap("stale")])
    result = sync([configmap("existing", v="2"), configmap("new")], check=True)
    assert result["changed"] is True
    assert {e["name"]: e["action"] for e in result["change_set"]} == {
        "existing": "configured", "new": "created", "stale": "pruned"}
    assert result["api_requests"]["writes"] == 0
    client = admin_clients[cluster.name]
    assert get_or_none(client, "v1", "ConfigMap", "existing", namespace)["data"] == {"v": "1"}
    assert get_or_none(client, "v1", "ConfigMap", "new", namespace) is None
    assert get_or_none(client, "v1", "ConfigMap", "stale", namespace) is not None


def test_diff_shows_before_and_after_with_secret_values_redacted(sync, namespace):
    sync([configmap("cfg", level="info"), secret("creds", password="first-password")])
    result = sync([configmap("cfg", level="debug"), secret("creds", password="second-password")], diff=True)
    diffs = {d["after_header"].split(" ")[0]: d for d in result["diff"]}
    cfg = diffs[f"ConfigMap/{namespace}/cfg"]
    assert "level: info" in cfg["before"] and "level: debug" in cfg["after"]
    creds = diffs[f"Secret/{namespace}/creds"]
    assert "<redacted: changed>" in creds["after"]
    dumped = json.dumps(result)
    for value in ("first-password", "second-password", "Zmlyc3QtcGFzc3dvcmQ=", "c2Vjb25kLXBhc3N3b3Jk"):
        assert value not in dumped


def test_field_manager_conflict_fails_clearly_then_force_takes_ownership(sync, cluster, namespace, admin_clients):
    sync([deployment("web", replicas=1)])
    subprocess.run([binary("kubectl"), "--kubeconfig", cluster.kubeconfig, "-n", namespace, "scale",
                    "deployment/web", "--replicas=4"], check=True, capture_output=True)
    failed = sync([deployment("web", replicas=2)], expect_failure=True)
    assert "field manager conflict" in failed["msg"] and ".spec.replicas" in failed["msg"]
    assert "kubectl" in failed["msg"] and "force_conflicts" in failed["msg"]
    assert get_or_none(admin_clients[cluster.name], "apps/v1", "Deployment", "web", namespace)["spec"]["replicas"] == 4
    forced = sync([deployment("web", replicas=2)], force_conflicts=True)
    assert forced["counts"]["configured"] == 1
    assert get_or_none(admin_clients[cluster.name], "apps/v1", "Deployment", "web", namespace)["spec"]["replicas"] == 2


def test_foreign_namespace_is_rejected_or_rewritten(sync, admin_clients, cluster, namespace):
    foreign = configmap("elsewhere")
    foreign["metadata"]["namespace"] = "kube-system"
    failed = sync([configmap("fine"), foreign], expect_failure=True)
    assert f"namespace 'kube-system' is not the project namespace '{namespace}'" in failed["msg"]
    assert get_or_none(admin_clients[cluster.name], "v1", "ConfigMap", "fine", namespace) is None
    rewritten = sync([foreign], foreign_namespace="rewrite")
    assert rewritten["change_set"][0]["namespace"] == namespace
    assert get_or_none(admin_clients[cluster.name], "v1", "ConfigMap", "elsewhere", "kube-system") is None


def test_cluster_scoped_object_is_refused(sync, admin_clients, cluster, namespace):
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": f"{namespace}-reader"}, "rules": []}
    failed = sync([role], expect_failure=True)
    assert "ClusterRole is cluster-scoped" in failed["msg"] and "allow_cluster_scoped" in failed["msg"]
    assert get_or_none(admin_clients[cluster.name], "rbac.authorization.k8s.io/v1", "ClusterRole",
                       f"{namespace}-reader") is None


def test_unknown_kind_is_named(sync, namespace):
    failed = sync([configmap("a"), {"apiVersion": "example.test/v1", "kind": "Gadget", "metadata": {"name": "g"}}],
                  expect_failure=True)
    assert "object #2 (Gadget g): unknown kind example.test/v1 Gadget" in failed["msg"]


def test_an_invalid_object_among_valid_ones_writes_nothing(sync, admin_clients, cluster, namespace):
    broken = deployment("broken")
    broken["spec"]["replicas"] = -1  # only the API server's validation knows this is wrong
    failed = sync([configmap("valid-1"), broken, configmap("valid-2")], expect_failure=True)
    assert f"Deployment.apps/{namespace}/broken" in failed["msg"] and "replicas" in failed["msg"]
    assert "nothing was applied" in failed["msg"]
    client = admin_clients[cluster.name]
    for name in ("valid-1", "valid-2"):
        assert get_or_none(client, "v1", "ConfigMap", name, namespace) is None


def test_empty_bundle_is_refused_unless_allowed(sync, admin_clients, cluster, namespace):
    sync([configmap("a")])
    failed = sync([], expect_failure=True)
    assert "bundle is empty" in failed["msg"] and "allow_empty" in failed["msg"]
    assert get_or_none(admin_clients[cluster.name], "v1", "ConfigMap", "a", namespace) is not None
    emptied = sync([], allow_empty=True)
    assert emptied["counts"]["pruned"] == 1


def test_src_bundle_file_and_state_absent_leaves_nothing_of_ours(sync, admin_clients, cluster, namespace, tmp_path):
    bundle = tmp_path / "bundle.yaml"
    bundle.write_text(yaml.safe_dump_all([configmap("one"), deployment("two"), secret("three", k="v")]))
    client = admin_clients[cluster.name]
    client.resources.get(api_version="v1", kind="ConfigMap").create(
        namespace=namespace, body={"metadata": {"name": "foreign"}})
    created = sync(src=str(bundle))
    assert created["counts"]["created"] == 3
    gone = sync(state="absent")
    assert gone["counts"]["deleted"] == 3 and gone["changed"] is True
    for api_version, kind, name in (("v1", "ConfigMap", "one"), ("apps/v1", "Deployment", "two"),
                                    ("v1", "Secret", "three"), ("v1", "ConfigMap", created["inventory"]["name"])):
        assert get_or_none(client, api_version, kind, name, namespace) is None, name
    assert get_or_none(client, "v1", "ConfigMap", "foreign", namespace) is not None
    again = sync(state="absent")
    assert again["changed"] is False


def _mark_ready(client, namespace, name):
    apps = k8s_client.AppsV1Api(client.client)
    live = apps.read_namespaced_deployment(name, namespace)
    replicas = live.spec.replicas
    apps.patch_namespaced_deployment_status(name, namespace, {"status": {
        "observedGeneration": live.metadata.generation, "replicas": replicas, "updatedReplicas": replicas,
        "readyReplicas": replicas, "availableReplicas": replicas,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                        "message": "ready", "lastTransitionTime": "2026-01-01T00:00:00Z",
                        "lastUpdateTime": "2026-01-01T00:00:00Z"}]}})


def test_wait_times_out_naming_the_deployment_then_succeeds_once_ready(sync, admin_clients, cluster, namespace):
    started = time.monotonic()
    failed = sync([deployment("slow", replicas=2)], wait=True, wait_timeout=3, expect_failure=True)
    assert time.monotonic() - started < 60
    assert "timed out after 3s" in failed["msg"]
    assert f"Deployment.apps/{namespace}/slow" in failed["msg"] and "no status yet" in failed["msg"]
    assert failed["health"][0]["status"] == "InProgress"
    _mark_ready(admin_clients[cluster.name], namespace, "slow")
    ready = sync([deployment("slow", replicas=2)], wait=True, wait_timeout=30)
    assert ready["health"] == [{"subject": f"Deployment.apps/{namespace}/slow", "status": "Current",
                                "message": "2/2 replicas ready"}]


def test_custom_health_check_in_jmespath(sync, namespace):
    result = sync([configmap("flag", state="on")], wait=True, wait_timeout=10,
                  health_checks=[{"kind": "ConfigMap", "current": "data.state == 'on'"}])
    assert result["health"][0]["status"] == "Current"
    failed = sync([configmap("flag", state="off")], wait=True, wait_timeout=10, expect_failure=True,
                  health_checks=[{"kind": "ConfigMap", "current": "data.state == 'on'", "failed": "data.state == 'off'"}])
    assert "health check failed" in failed["msg"] and f"ConfigMap/{namespace}/flag" in failed["msg"]


def test_namespace_scoped_token_syncs_namespaced_objects_and_gets_a_clear_403(clusters, admin_clients, tmp_path):
    cluster = clusters[1]
    admin = admin_clients[cluster.name]
    home = unique_name("sa-home")
    kubeconfig, token = service_account_kubeconfig(cluster, admin, home, "deployer", str(tmp_path / "sa.kubeconfig"))
    params = dict(kubeconfig=kubeconfig, owner=f"gitops/{home}/app", namespace=home)
    ok, _ = run_module(MODULE, dict(params, manifests=[configmap("a"), deployment("web")]))
    assert not ok.get("failed"), ok.get("msg")
    assert ok["counts"]["created"] == 2
    again, _ = run_module(MODULE, dict(params, manifests=[configmap("a"), deployment("web")]))
    assert again["changed"] is False
    assert get_or_none(admin, "v1", "ConfigMap", "a", home) is not None

    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": f"{home}-x"},
            "rules": []}
    denied, run_ = run_module(MODULE, dict(params, manifests=[configmap("a"), role], allow_cluster_scoped=True))
    assert denied.get("failed")
    assert "forbidden" in denied["msg"] and f"ClusterRole.rbac.authorization.k8s.io/{home}-x" in denied["msg"]
    assert "lack permission" in denied["msg"]
    assert token not in run_.output

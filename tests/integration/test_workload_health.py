"""`wait: true` on real rollouts: clusters with kube-controller-manager, kube-scheduler and kwok.

cluster-2 runs workloads (tests/integration/conftest.py): Deployments, StatefulSets, DaemonSets and
Jobs really roll out on a kwok Node. A good revision becomes Current; Pods labelled
kwok.gitops.federation/fail (tools/localenv/kwok/stages.yaml) crash or never become ready, and the sync
fails naming the object and the reason, within wait_timeout.
"""

import threading
import time

import pytest
from kubernetes import client as k8s_client

from playbook import run_module

MODULE = "gitops.federation.cluster_sync"
FAIL_LABEL = "kwok.gitops.federation/fail"
CRD_GROUP = "health.gitops.test"


def pod_template(name, image, fail=None, restart_policy=None):
    labels = {"app": name}
    if fail:
        labels[FAIL_LABEL] = fail
    spec = {"containers": [{"name": "app", "image": image}]}
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    return {"metadata": {"labels": labels}, "spec": spec}


def deployment(name, image="web:1", replicas=2, fail=None, deadline=None):
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, image, fail)}
    if deadline:
        spec["progressDeadlineSeconds"] = deadline
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def statefulset(name, image="db:1", replicas=2, fail=None):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": pod_template(name, image, fail)}}


def daemonset(name, image="agent:1", fail=None):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": pod_template(name, image, fail)}}


def job(name, fail=None):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": pod_template(name, "migrate:1", fail, restart_policy="Never")}}


def bare_pod(name, fail=None):
    template = pod_template(name, "tool:1", fail)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": dict(template["metadata"], name=name),
            "spec": template["spec"]}


@pytest.fixture
def cluster(local_clusters):
    cluster = local_clusters.by_name("cluster-2")
    assert cluster.workloads and cluster.nodes, "cluster-2 must run workloads (conftest.py local_clusters)"
    return cluster


@pytest.fixture
def admin(admin_clients, cluster):
    return admin_clients[cluster.name]


@pytest.fixture
def sync(cluster, namespace):
    """Run cluster_sync with wait: true on cluster-2; returns (result, seconds it took)."""
    def run(manifests, wait_timeout, expect_failure=False, **args):
        params = dict(kubeconfig=cluster.kubeconfig, owner=f"gitops/{namespace}/app", namespace=namespace,
                      manifests=manifests, wait=True, wait_timeout=wait_timeout)
        params.update(args)
        started = time.monotonic()
        result, run_ = run_module(MODULE, params)
        elapsed = time.monotonic() - started
        if expect_failure:
            assert result.get("failed"), result
        else:
            assert not result.get("failed"), result.get("msg") or run_.output[-3000:]
        return result, elapsed
    return run


def health(result):
    return {entry["subject"]: (entry["status"], entry["message"]) for entry in result["health"]}


def test_good_revisions_of_every_workload_kind_become_current(sync, admin, namespace):
    bundle = [deployment("web"), statefulset("db"), daemonset("agent"), job("migrate")]
    result, _ = sync(bundle, wait_timeout=120)
    assert health(result) == {
        f"Deployment.apps/{namespace}/web": ("Current", "2/2 replicas ready"),
        f"StatefulSet.apps/{namespace}/db": ("Current", "2/2 replicas ready"),
        f"DaemonSet.apps/{namespace}/agent": ("Current", "1/1 pods available"),
        f"Job.batch/{namespace}/migrate": ("Current", "Job complete: succeeded 1, failed 0, active 0"),
    }
    core = k8s_client.CoreV1Api(admin.client)
    pods = core.list_namespaced_pod(namespace).items
    assert sorted(p.status.phase for p in pods) == ["Running"] * 5 + ["Succeeded"]
    assert all(p.spec.node_name for p in pods), "the scheduler placed every Pod on the kwok node"

    # The next revision rolls out too: new ReplicaSet, StatefulSet revision and DaemonSet pods.
    result, _ = sync([deployment("web", image="web:2"), statefulset("db", image="db:2"),
                      daemonset("agent", image="agent:2"), job("migrate")], wait_timeout=120)
    assert {status for status, _ in health(result).values()} == {"Current"}
    apps = k8s_client.AppsV1Api(admin.client)
    web = apps.read_namespaced_deployment("web", namespace)
    assert web.status.updated_replicas == 2 and web.status.available_replicas == 2
    db = apps.read_namespaced_stateful_set("db", namespace)
    assert db.status.current_revision == db.status.update_revision
    images = {c.image for p in core.list_namespaced_pod(namespace, label_selector="app in (web,db,agent)").items
              if p.status.phase == "Running" and not p.metadata.deletion_timestamp for c in p.spec.containers}
    assert images == {"web:2", "db:2", "agent:2"}


def test_crash_looping_revision_fails_at_the_progress_deadline_not_the_timeout(sync, namespace):
    sync([deployment("web", deadline=10)], wait_timeout=120)
    result, elapsed = sync([deployment("web", image="web:2", fail="crash", deadline=10)], wait_timeout=120,
                           expect_failure=True)
    assert result["msg"].startswith("health check failed: "), "failed on the object's status, not on wait_timeout"
    assert f"Deployment.apps/{namespace}/web: progress deadline exceeded" in result["msg"]
    assert "has timed out progressing" in result["msg"]
    assert health(result)[f"Deployment.apps/{namespace}/web"][0] == "Failed"
    # The deadline is 10s; the sync returned well before wait_timeout (120s).
    assert elapsed < 60, elapsed


def test_crashing_pod_and_job_fail_with_their_reason(sync, namespace):
    result, elapsed = sync([bare_pod("tool", fail="crash")], wait_timeout=120, expect_failure=True)
    assert f"Pod/{namespace}/tool: containers failing: app CrashLoopBackOff" in result["msg"]
    assert elapsed < 60, elapsed

    result, elapsed = sync([job("migrate", fail="crash")], wait_timeout=120, expect_failure=True)
    assert f"Job.batch/{namespace}/migrate: Job failed (BackoffLimitExceeded" in result["msg"]
    assert elapsed < 60, elapsed


def test_never_ready_revision_fails_naming_each_object(sync, namespace):
    result, elapsed = sync([deployment("web", fail="never-ready", deadline=10)], wait_timeout=120,
                           expect_failure=True)
    assert f"Deployment.apps/{namespace}/web: progress deadline exceeded" in result["msg"]
    assert elapsed < 60, elapsed

    # StatefulSets and DaemonSets have no progress deadline: they fail at wait_timeout, saying what is missing.
    result, elapsed = sync([statefulset("db", replicas=1, fail="never-ready"), daemonset("agent", fail="never-ready")],
                           wait_timeout=15, expect_failure=True)
    assert "timed out after 15s waiting for 2 objects to become ready" in result["msg"]
    assert f"StatefulSet.apps/{namespace}/db: StatefulSet: readyReplicas 0 of 1" in result["msg"]
    assert f"DaemonSet.apps/{namespace}/agent: DaemonSet: numberAvailable 0 of 1" in result["msg"]
    assert 15 <= elapsed < 15 + 45, elapsed


# -- a custom resource whose controller reports Ready / Stalled conditions ---------------------------------------

def widget_crd():
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"widgets.{CRD_GROUP}"},
            "spec": {"group": CRD_GROUP, "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "subresources": {"status": {}}, "schema": {"openAPIV3Schema": schema}}]}}


def widget(size):
    return {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": size}}


def widget_status(admin, namespace, generation, *conditions):
    """Write the Widget's status as its controller would."""
    k8s_client.CustomObjectsApi(admin.client).patch_namespaced_custom_object_status(
        CRD_GROUP, "v1", namespace, "widgets", "w", {"status": {
            "observedGeneration": generation,
            "conditions": [dict(type=t, status=s, reason=r, message=m, lastTransitionTime="2026-01-01T00:00:00Z")
                           for t, s, r, m in conditions]}})


class WidgetController(threading.Thread):
    """Plays the Widget controller for one generation: once it appears, Ready=False, then 3s later Stalled=True."""

    def __init__(self, admin, namespace, generation):
        super().__init__(daemon=True)
        self.admin, self.namespace, self.generation = admin, namespace, generation
        self.error = None

    def run(self):
        api = k8s_client.CustomObjectsApi(self.admin.client)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                live = api.get_namespaced_custom_object(CRD_GROUP, "v1", self.namespace, "widgets", "w")
                if live["metadata"]["generation"] >= self.generation:
                    break
                time.sleep(0.2)
            widget_status(self.admin, self.namespace, self.generation,
                          ("Ready", "False", "Provisioning", "resizing the widget"))
            time.sleep(3)
            widget_status(self.admin, self.namespace, self.generation,
                          ("Ready", "False", "InvalidSpec", "size must be at most 10"),
                          ("Stalled", "True", "InvalidSpec", "size must be at most 10"))
        except Exception as err:  # noqa: BLE001 (reported by the test)
            self.error = err


def test_custom_resource_follows_its_ready_and_stalled_conditions(sync, admin, namespace):
    bundle = [widget_crd(), widget(3)]
    sync(bundle, wait=False, wait_timeout=60, allow_cluster_scoped=True)
    widget_status(admin, namespace, 1, ("Ready", "False", "Provisioning", "creating the widget"))
    result, _ = sync(bundle, wait_timeout=5, expect_failure=True, allow_cluster_scoped=True)
    assert "timed out after 5s waiting for 1 object to become ready: " \
        f"Widget.{CRD_GROUP}/{namespace}/w: Ready is False (Provisioning): creating the widget" in result["msg"]

    widget_status(admin, namespace, 1, ("Ready", "True", "Provisioned", "widget is serving"))
    result, _ = sync(bundle, wait_timeout=60, allow_cluster_scoped=True)
    assert health(result)[f"Widget.{CRD_GROUP}/{namespace}/w"] == ("Current", "widget is serving")

    # A new revision (generation 2): InProgress until observed, then the controller reports Stalled.
    controller = WidgetController(admin, namespace, generation=2)
    controller.start()
    result, elapsed = sync([widget_crd(), widget(30)], wait_timeout=60, expect_failure=True,
                           allow_cluster_scoped=True)
    controller.join(10)
    assert controller.error is None
    assert result["msg"].startswith("health check failed: ")
    assert f"Widget.{CRD_GROUP}/{namespace}/w: Stalled: InvalidSpec: size must be at most 10" in result["msg"]
    assert elapsed < 45, elapsed

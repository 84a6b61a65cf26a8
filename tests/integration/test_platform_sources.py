"""Platform sources (allowed by the operator's inventory, not by the tenant) and sources applied as a ServiceAccount.

The playbooks run as users run them (sources.yml, sync.yml, status.yml, teardown.yml) against the session's real
clusters: cluster-1 is the management cluster, cluster-2 and cluster-3 the attached clusters. Assertions read the
clusters with the kubernetes client and kubectl, never with the code under test.
"""

import json
import os
import re
import subprocess
import time

import pytest
import yaml

from kube import ensure_namespace, get_or_none, service_account_kubeconfig, unique_name
from playbook import run_module
from test_playbooks import (
    ATTACHED, FK, MANAGEMENT, OWNER_LABEL, Env, condition, failed, failure_details, failure_messages, ok, playbook,
    recap, status_rows, task)
from tools.localenv.binaries import binary

SOURCE = "addons"
CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
CLUSTER_ROLE = ("rbac.authorization.k8s.io/v1", "ClusterRole")
ROLE = ("rbac.authorization.k8s.io/v1", "Role")
RECONCILE = "Reconcile the sources of this cluster"


@pytest.fixture(scope="module")
def env(clusters, admin_clients, git_servers, tmp_path_factory):
    return Env(clusters, admin_clients, git_servers, str(tmp_path_factory.mktemp("platform")))


def crd(group, kind, plural, scope):
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "%s.%s" % (plural, group)},
            "spec": {"group": group, "scope": scope, "names": {"kind": kind, "plural": plural},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "properties": {"spec": {"type": "object", "properties": {
                             "size": {"type": "integer"}}}}}}}]}}


class Addons:
    """A platform-style repository: two CRDs (one namespaced, one cluster-scoped kind) with custom resources,
    a ClusterRole, a Role in kube-system, a Namespace of its own with a ConfigMap in it, and a ConfigMap of
    the project namespace."""

    def __init__(self, env, policy=None, service_account=None, files=None):
        self.env = env
        self.namespace = unique_name("plat")
        self.group = "%s.example.test" % self.namespace
        self.repo = unique_name("addons")
        self.files = files or self.manifests()
        env.git.create_repo(self.repo, files=self.files)
        self.source_entry = source = {"name": SOURCE, "url": env.git.http_url(self.repo), "ref": {"branch": "main"}, "secret": "git",
                  "path": "deploy", "clusters": list(ATTACHED)}
        if policy is not None:
            source["platform"] = policy
        if service_account:
            source["service_account"] = service_account
        self.spec = {"namespace": self.namespace,
                     "secrets": [{"name": "git", "username": env.git.username, "password": env.git.password,
                                  "clusters": list(ATTACHED)}],
                     "sources": [source]}
        self.inventory = env.inventory([self.spec])

    def use_policy(self, policy):
        self.source_entry["platform"] = policy
        self.inventory = self.env.inventory([self.spec])

    @property
    def key(self):
        return "%s/%s" % (self.namespace, SOURCE)

    @property
    def cluster_role(self):
        return "%s-reader" % self.namespace

    def manifests(self):
        ns, group = self.namespace, self.group
        documents = {
            "deploy/crds.yaml": [crd(group, "Widget", "widgets", "Namespaced"),
                                 crd(group, "Gizmo", "gizmos", "Cluster")],
            "deploy/widgets.yaml": [
                {"apiVersion": "%s/v1" % group, "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 1}},
                {"apiVersion": "%s/v1" % group, "kind": "Widget", "metadata": {"name": "w2", "namespace": "kube-system"},
                 "spec": {"size": 2}}],
            "deploy/gizmo.yaml": [{"apiVersion": "%s/v1" % group, "kind": "Gizmo", "metadata": {"name": "g-" + ns},
                                   "spec": {"size": 3}}],
            "deploy/rbac.yaml": [
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                 "metadata": {"name": "%s-reader" % ns},
                 "rules": [{"apiGroups": [group], "resources": ["widgets"], "verbs": ["get", "list"]}]},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                 "metadata": {"name": "%s-role" % ns, "namespace": "kube-system"},
                 "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}],
            "deploy/settings.yaml": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                                      "data": {"level": "info"}}],
            "deploy/monitoring.yaml": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mon-" + ns}},
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "scrape", "namespace": "mon-" + ns},
                 "data": {"interval": "30s"}}],
        }
        return dict((path, yaml.safe_dump_all(docs)) for path, docs in documents.items())

    def get(self, host, api_version, kind, name, namespace=None):
        return get_or_none(self.env.clients[host], api_version, kind, name, namespace)

    def source(self):
        return self.get(MANAGEMENT, *FK, SOURCE, self.namespace)

    def crd(self, host, plural):
        return self.get(host, *CRD, "%s.%s" % (plural, self.group))

    def widget(self, host, name, namespace):
        return self.get(host, "%s/v1" % self.group, "Widget", name, namespace)

    def gizmo(self, host):
        return self.get(host, "%s/v1" % self.group, "Gizmo", "g-" + self.namespace)

    def written(self, host):
        """Every object of the repository that exists on the cluster (CRs only when their CRD does)."""
        found = []
        for plural in ("widgets", "gizmos"):
            if self.crd(host, plural) is not None:
                found.append("crd " + plural)
        if self.crd(host, "widgets") is not None:
            found += ["widget %s" % n for n, ns in (("w1", self.namespace), ("w2", "kube-system"))
                      if self.widget(host, n, ns) is not None]
        if self.crd(host, "gizmos") is not None and self.gizmo(host) is not None:
            found.append("gizmo")
        if self.get(host, *CLUSTER_ROLE, self.cluster_role) is not None:
            found.append("clusterrole")
        if self.get(host, *ROLE, "%s-role" % self.namespace, "kube-system") is not None:
            found.append("role")
        if self.get(host, "v1", "ConfigMap", "settings", self.namespace) is not None:
            found.append("configmap")
        namespace = self.get(host, "v1", "Namespace", "mon-" + self.namespace)
        if namespace is not None and not namespace["metadata"].get("deletionTimestamp"):
            found.append("namespace")
        if self.get(host, "v1", "ConfigMap", "scrape", "mon-" + self.namespace) is not None:
            found.append("scrape configmap")
        return found

    def events(self):
        items = self.env.management.resources.get(api_version="v1", kind="Event").get(
            namespace=self.namespace).to_dict()["items"]
        return [(e["reason"], e["message"]) for e in items if e["involvedObject"]["kind"] == FK[1]]

    def delete_crds(self):
        for host in ATTACHED:
            for plural in ("widgets", "gizmos"):
                if self.crd(host, plural) is not None:
                    self.env.clients[host].resources.get(api_version=CRD[0], kind=CRD[1]).delete(
                        name="%s.%s" % (plural, self.group))


ALLOWED = {"cluster_scoped_kinds": ["CustomResourceDefinition", "ClusterRole", "Gizmo"], "namespaces": ["kube-system"]}
EVERYTHING = ["crd widgets", "crd gizmos", "widget w1", "widget w2", "gizmo", "clusterrole", "role", "configmap",
              "namespace", "scrape configmap"]


def eventually(check, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.5)


def reconcile_results(run):
    return dict((r["_host"], r) for r in run.results if task(r, RECONCILE))


def platform_policy(addons, **extra):
    """ALLOWED plus the namespace the repository creates (Namespace objects are cluster-scoped)."""
    return dict(cluster_scoped_kinds=ALLOWED["cluster_scoped_kinds"] + ["Namespace"],
                namespaces=ALLOWED["namespaces"] + ["mon-" + addons.namespace], **extra)


def test_a_platform_source_is_synced_resynced_pruned_and_torn_down_on_two_clusters(env):
    addons = Addons(env)
    addons.use_policy(platform_policy(addons))
    try:
        ok(playbook("sources", addons.inventory))
        # The operator's policy is copied onto the federated object, for kubectl users to read.
        template = addons.source()["spec"]["template"]["spec"]
        assert template["platform"] == {
            "clusterScopedKinds": ["ClusterRole", "CustomResourceDefinition", "Gizmo", "Namespace"],
            "namespaces": sorted(["kube-system", "mon-" + addons.namespace]), "pruneCRDs": False}

        ok(playbook("sync", addons.inventory))
        for host in ATTACHED:
            assert addons.written(host) == EVERYTHING, host
            role = addons.get(host, *ROLE, "%s-role" % addons.namespace, "kube-system")
            assert role["metadata"]["labels"][OWNER_LABEL]
            assert addons.get(host, *CLUSTER_ROLE, addons.cluster_role)["metadata"]["annotations"][
                "gitops.federation/owner"] == "gitops/%s" % addons.key
        status = addons.source()["status"]
        assert status["scope"] == "platform"
        assert status["platform"]["namespaces"] == sorted(["kube-system", "mon-" + addons.namespace])
        assert condition(status, "Propagation")["status"] == "True"
        # kubectl shows the scope (printer column, -o wide) and so does the status playbook.
        listed = env.kubectl(MANAGEMENT, "get", "federatedkustomization", "-n", addons.namespace,
                             "-o", "wide").stdout
        assert re.search(r"^SCOPE|\sSCOPE\s", listed, re.M) and " platform " in listed, listed
        rows = status_rows(ok(playbook("status", addons.inventory, {"project": addons.namespace})))
        assert rows[0].split()[2] == "SCOPE"
        assert all(re.split(r"\s{2,}", row)[2] == "platform" for row in rows[1:]), rows

        second = ok(playbook("sync", addons.inventory, callback="default"))
        for host, (unused_ok, changed, unreachable, failures) in recap(second).items():
            assert (changed, unreachable, failures) == (0, 0, 0), "%s: %s" % (host, second.stdout[-3000:])

        # The cluster-scoped kind, its custom resource, the ClusterRole and the Role in kube-system leave git.
        env.git.commit(addons.repo, files={"deploy/gizmo.yaml": None, "deploy/rbac.yaml": None,
                                           "deploy/crds.yaml": yaml.safe_dump(crd(addons.group, "Widget", "widgets",
                                                                                  "Namespaced"))},
                       message="drop gizmos and rbac")
        pruned = ok(playbook("sync", addons.inventory))
        for host in ATTACHED:
            # Pruned, except the CRD: deleting it would delete every Gizmo on the cluster.
            assert addons.written(host) == ["crd widgets", "crd gizmos", "widget w1", "widget w2", "configmap",
                                            "namespace", "scrape configmap"], host
            counts = reconcile_results(pruned)[host]["details"][addons.key]["counts"]
            assert counts["pruned"] == 3 and counts["orphaned"] == 1, counts

        teardown = ok(playbook("teardown", addons.inventory, {"project": addons.namespace, "source": SOURCE}))
        for host in ATTACHED:
            eventually(lambda: addons.written(host) == ["crd widgets", "crd gizmos"],
                       lambda: "left on %s: %s" % (host, addons.written(host)))
        assert addons.source() is None, teardown.output[-3000:]
    finally:
        addons.delete_crds()


def test_a_platform_source_that_may_prune_crds_deletes_them(env):
    addons = Addons(env)
    addons.use_policy(platform_policy(addons, prune_crds=True))
    try:
        ok(playbook("sources", addons.inventory))
        ok(playbook("sync", addons.inventory))
        env.git.commit(addons.repo, files={"deploy/gizmo.yaml": None, "deploy/crds.yaml": yaml.safe_dump(
            crd(addons.group, "Widget", "widgets", "Namespaced"))}, message="drop gizmos")
        ok(playbook("sync", addons.inventory))
        for host in ATTACHED:  # a CRD's deletion finishes once the API server has removed its custom resources
            eventually(lambda: addons.crd(host, "gizmos") is None, "CRD gizmos still on %s" % host)
            assert addons.crd(host, "widgets") is not None, host
        ok(playbook("teardown", addons.inventory, {"project": addons.namespace, "source": SOURCE}))
        for host in ATTACHED:
            eventually(lambda: addons.written(host) == [], lambda: "left on %s: %s" % (host, addons.written(host)))
    finally:
        addons.delete_crds()


def test_a_tenant_source_with_the_same_content_is_refused_naming_each_object(env):
    addons = Addons(env)
    ok(playbook("sources", addons.inventory))
    assert "platform" not in addons.source()["spec"]["template"]["spec"]
    run = failed(playbook("sync", addons.inventory))
    for host in ATTACHED:
        message = reconcile_results(run)[host]["report"]["sources"][addons.key]["message"]
        for named in ("CustomResourceDefinition widgets.%s" % addons.group,
                      "CustomResourceDefinition gizmos.%s" % addons.group,
                      "Gizmo g-%s" % addons.namespace, "ClusterRole %s" % addons.cluster_role,
                      "Widget w2): namespace 'kube-system'", "Role %s-role): namespace 'kube-system'" % addons.namespace):
            assert named in message, (named, message)
        assert "nothing was applied" in message
        assert addons.written(host) == [], host
    assert addons.source()["status"]["scope"] == "tenant"


def test_a_tenant_cannot_widen_its_own_policy_by_editing_the_federated_object(env, tmp_path):
    addons = Addons(env)
    ok(playbook("sources", addons.inventory))
    # A tenant: a real ServiceAccount token with every right in the project namespace of the management cluster.
    tenant, unused_token = service_account_kubeconfig(env.hosts[MANAGEMENT], env.management, addons.namespace,
                                                      "tenant", str(tmp_path / "tenant.kubeconfig"))
    patch = {"spec": {"template": {"spec": {"platform": {"clusterScopedKinds": ["*"], "namespaces": ["*"],
                                                                 "pruneCRDs": True},
                                            "serviceAccountName": "admin"}}}}
    proc = subprocess.run([binary("kubectl"), "--kubeconfig", tenant, "patch", "federatedkustomization", SOURCE,
                           "-n", addons.namespace, "--type", "merge", "-p", json.dumps(patch)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

    run = failed(playbook("sync", addons.inventory))
    plan = [r for r in run.results if task(r, "Read, lease, fetch and render; plan every attached cluster's work")][0]
    note = [w for w in plan.get("warnings") or [] if "claims" in w]
    assert note and "uses the operator's policy" in note[0], plan.get("warnings")
    assert "cluster-scoped kinds all" in note[0] and "ServiceAccount %s/admin" % addons.namespace in note[0]
    for host in ATTACHED:  # refused as the tenant source it is: nothing written
        message = reconcile_results(run)[host]["report"]["sources"][addons.key]["message"]
        assert "ClusterRole %s" % addons.cluster_role in message, message
        assert addons.written(host) == [], host
    status = addons.source()["status"]
    assert status["scope"] == "tenant"
    policy = condition(status, "Policy")
    assert (policy["status"], policy["reason"]) == ("False", "ClaimIgnored"), policy
    assert "uses the operator's policy" in policy["message"]
    assert any(reason == "PolicyClaimIgnored" for reason, unused in addons.events()), addons.events()
    assert any(addons.key in m for m in failure_messages(run)), failure_details(run)


def app_files():
    return {"deploy/app.yaml": yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-settings"}, "data": {"level": "info"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app"},
         "spec": {"ports": [{"port": 80}], "selector": {"app": "app"}}}])}


def grant(env, host, namespace, resources):
    """ServiceAccount deployer in namespace, with a Role on exactly these resources (core group)."""
    client = env.clients[host]
    ensure_namespace(client, namespace)
    rules = [{"apiGroups": [""], "resources": resources, "verbs": ["*"]}]
    for api_version, kind, body in (
            ("v1", "ServiceAccount", {"metadata": {"name": "deployer"}}),
            ("rbac.authorization.k8s.io/v1", "Role", {"metadata": {"name": "deployer"}, "rules": rules}),
            ("rbac.authorization.k8s.io/v1", "RoleBinding", {
                "metadata": {"name": "deployer"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
                "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}]})):
        resource = client.resources.get(api_version=api_version, kind=kind)
        body = dict(body, apiVersion=api_version, kind=kind)
        if get_or_none(client, api_version, kind, body["metadata"]["name"], namespace) is None:
            resource.create(body=body, namespace=namespace)
        else:
            resource.replace(body=body, namespace=namespace, name=body["metadata"]["name"])


def test_a_source_applied_as_a_service_account_lacking_a_permission_is_refused_with_nothing_written(env):
    app = Addons(env, service_account="deployer", files=app_files())
    for host in ATTACHED:  # the ServiceAccount may manage ConfigMaps (its objects and inventory), not Services
        grant(env, host, app.namespace, ["configmaps"])
    ok(playbook("sources", app.inventory))
    run = failed(playbook("sync", app.inventory))
    account = "system:serviceaccount:%s:deployer" % app.namespace
    for host in ATTACHED:
        message = reconcile_results(run)[host]["report"]["sources"][app.key]["message"]
        assert "Service/%s/app" % app.namespace in message, message
        assert account in message and "ServiceAccount %s/deployer" % app.namespace in message, message
        assert "nothing was applied" in message, message
        assert app.get(host, "v1", "ConfigMap", "app-settings", app.namespace) is None, host
        assert app.get(host, "v1", "Service", "app", app.namespace) is None, host

    # With the permission granted, the same sync goes through (as the ServiceAccount).
    for host in ATTACHED:
        grant(env, host, app.namespace, ["configmaps", "services"])
    ok(playbook("sync", app.inventory))
    for host in ATTACHED:
        assert app.get(host, "v1", "Service", "app", app.namespace) is not None, host
    assert app.source()["status"]["platform"] == {"serviceAccount": "%s/deployer" % app.namespace}
    assert os.path.exists(app.inventory)


def test_the_owner_guard_holds_for_cluster_scoped_objects_and_other_namespaces(clusters, admin_clients, namespace):
    """Two platform sources declaring the same ClusterRole and the same Role in kube-system: the second is refused,
    naming the owner, before it writes anything (cluster_sync, the engine of every sync, on cluster-1)."""
    cluster = clusters[0]
    platform = {"cluster_scoped_kinds": ["ClusterRole"], "namespaces": ["kube-system"]}
    shared = [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "%s-shared" % namespace}, "rules": []},
              {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "%s-shared" % namespace, "namespace": "kube-system"}, "rules": []}]

    def sync(owner, manifests, state="present"):
        result, unused_run = run_module("gitops.federation.cluster_sync", dict(
            kubeconfig=cluster.kubeconfig, owner=owner, namespace=namespace, manifests=manifests, state=state,
            platform=platform))
        return result

    first = sync("gitops/%s/a" % namespace, shared)
    assert not first.get("failed"), first.get("msg")
    own = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b-own"}}
    second = sync("gitops/%s/b" % namespace, shared + [own])
    assert second.get("failed"), second
    for ref in ("ClusterRole.rbac.authorization.k8s.io/%s-shared" % namespace,
                "Role.rbac.authorization.k8s.io/kube-system/%s-shared" % namespace):
        assert "%s already belongs to gitops/%s/a" % (ref, namespace) in second["msg"], second["msg"]
    assert get_or_none(admin_clients[cluster.name], "v1", "ConfigMap", "b-own", namespace) is None
    # The first source's teardown removes both, wherever they are.
    removed = sync("gitops/%s/a" % namespace, None, state="absent")
    assert removed["counts"]["deleted"] == 2, removed
    client = admin_clients[cluster.name]
    assert get_or_none(client, *CLUSTER_ROLE, "%s-shared" % namespace) is None
    assert get_or_none(client, *ROLE, "%s-shared" % namespace, "kube-system") is None

"""Rollout rings with bake times and automatic rollback, through the sources and sync playbooks.

Three attached clusters that run workloads (kube-controller-manager, kube-scheduler and kwok: Deployments roll
out and their Pods become Ready, or never do when labelled kwok.gitops.federation/fail): cluster-2 and
cluster-3 of the session, plus one more started here. cluster-1 is the management cluster. The source's rings:
canary (one named cluster), eu (a label selector, baked), rest (the rest, baked). Assertions read the clusters
with the kubernetes client, never with the code under test.
"""

import datetime
import json
import os

import pytest
import yaml

from kube import dynamic_client, get_or_none, unique_name  # noqa: I100 (tests/integration is on sys.path)
from playbook import ROOT, run_playbook
from tools.localenv.clusters import LocalClusters

PLAYBOOKS = os.path.join(ROOT, "playbooks")
SOURCE = "web"
SECRET = "git"
HOSTS = ("ring-canary", "ring-eu", "ring-rest")
FK = ("types.kubefed.io/v1beta1", "FederatedKustomization")
FAIL_LABEL = "kwok.gitops.federation/fail"
LAST_HEALTHY = "gitops.federation/last-healthy"
RINGS = [{"name": "canary", "clusters": ["ring-canary"]},
         {"name": "eu", "cluster_selector": {"region": "eu"}, "bake": "6s"},
         {"name": "rest", "bake": "3s"}]


def deployment(image, fail=None):
    labels = {"app": "web"}
    if fail:
        labels[FAIL_LABEL] = fail
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 8, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "web", "image": image}]}}}})


@pytest.fixture(scope="module")
def ring_cluster(tmp_path_factory):
    """A third attached cluster with workloads (the session has two), for the third ring."""
    env = LocalClusters(str(tmp_path_factory.mktemp("ring-clusters")))
    env.start(("ring-3",), workloads=True)
    yield env.by_name("ring-3")
    env.stop()


class Rollout:
    """One project with one source whose repository holds the Deployment web, and its inventory."""

    def __init__(self, clusters, admin_clients, ring_cluster, git, workdir):
        self.git = git
        self.namespace, self.repo = unique_name("ro"), unique_name("repo")
        self.hosts = {"mgmt": clusters[0], HOSTS[0]: clusters[1], HOSTS[1]: clusters[2], HOSTS[2]: ring_cluster}
        self.clients = {"mgmt": admin_clients[clusters[0].name], HOSTS[0]: admin_clients[clusters[1].name],
                        HOSTS[1]: admin_clients[clusters[2].name], HOSTS[2]: dynamic_client(ring_cluster.kubeconfig)}
        self.revisions = ["main@sha1:" + git.create_repo(self.repo, files={"app/web.yaml": deployment("web:1")})]
        labels = {HOSTS[0]: {"region": "us"}, HOSTS[1]: {"region": "eu"}, HOSTS[2]: {"region": "ap"}}
        project = {
            "namespace": self.namespace,
            "secrets": [{"name": SECRET, "username": git.username, "password": git.password, "cluster_selector": {}}],
            "sources": [{"name": SOURCE, "url": git.http_url(self.repo), "ref": {"branch": "main"}, "secret": SECRET,
                         "path": "app", "timeout": "60s", "cluster_selector": {}, "rollout": RINGS}],
        }
        inventory = {"all": {
            "vars": {"ansible_connection": "local", "gitops_projects": [project]},
            "children": {
                "management": {"hosts": {"mgmt": {"kubeconfig": clusters[0].kubeconfig}}},
                "attached": {"hosts": dict((h, {"kubeconfig": self.hosts[h].kubeconfig,
                                                "cluster_labels": dict(labels[h], env="rollout")}) for h in HOSTS)},
            },
        }}
        self.inventory = os.path.join(workdir, unique_name("inventory") + ".yml")
        with open(self.inventory, "w") as handle:
            yaml.safe_dump(inventory, handle)

    def playbook(self, name, extra_vars=None):
        return run_playbook(os.path.join(PLAYBOOKS, name + ".yml"), inventory=self.inventory, extra_vars=extra_vars,
                            args=("-f", "5"))

    def commit(self, image, fail=None):
        sha = self.git.commit(self.repo, files={"app/web.yaml": deployment(image, fail)}, message=image)
        self.revisions.append("main@sha1:" + sha)
        return self.revisions[-1]

    def deployment(self, host):
        return get_or_none(self.clients[host], "apps/v1", "Deployment", "web", self.namespace)

    def image(self, host):
        return self.deployment(host)["spec"]["template"]["spec"]["containers"][0]["image"]

    def available(self, host):
        conditions = (self.deployment(host).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)

    def inventory_configmap(self, host):
        resource = self.clients[host].resources.get(api_version="v1", kind="ConfigMap")
        items = resource.get(namespace=self.namespace, label_selector="gitops.federation/inventory=true").to_dict()
        found = [i for i in items["items"] if i["data"].get("owner") == "gitops/%s/%s" % (self.namespace, SOURCE)]
        assert len(found) == 1, items
        return found[0]

    def last_healthy(self, host):
        annotations = self.inventory_configmap(host)["metadata"].get("annotations") or {}
        return json.loads(annotations[LAST_HEALTHY])["revision"]

    def status(self):
        return get_or_none(self.clients["mgmt"], *FK, SOURCE, self.namespace)["status"]

    def rings(self):
        return dict((r["name"], (r["state"], r.get("revision"))) for r in self.status()["rollout"]["rings"])

    def events(self, *reasons):
        """(reason, message, first timestamp) of the source's Events of these reasons, oldest first."""
        items = self.clients["mgmt"].resources.get(api_version="v1", kind="Event").get(
            namespace=self.namespace).to_dict()["items"]
        found = [(e["reason"], e["message"], e["firstTimestamp"]) for e in items
                 if e["involvedObject"]["kind"] == FK[1] and e["reason"] in reasons]
        return sorted(found, key=lambda e: e[2])


def ok(run):
    assert run.returncode == 0, run.output[-6000:]
    return run


def failed(run):
    assert run.returncode != 0, run.output[-6000:]
    return run


def final_failures(run):
    found = [r for r in run.results if r.get("failed") and r["_task"].endswith("Report what did not sync")]
    assert found, run.output[-6000:]
    return found[0]["msg"]


def seconds(moment):
    return datetime.datetime.strptime(moment, "%Y-%m-%dT%H:%M:%SZ").timestamp()


@pytest.fixture
def rollout(clusters, admin_clients, ring_cluster, git_servers, tmp_path):
    project = Rollout(clusters, admin_clients, ring_cluster, git_servers, str(tmp_path))
    ok(project.playbook("sources"))
    return project


def test_a_healthy_rollout_goes_ring_by_ring_each_baked_before_the_next(rollout):
    ok(rollout.playbook("sync"))
    first = rollout.revisions[0]
    for host in HOSTS:
        assert rollout.image(host) == "web:1" and rollout.available(host), host
        assert rollout.last_healthy(host) == first
    assert rollout.rings() == {"canary": ("Healthy", first), "eu": ("Healthy", first), "rest": ("Healthy", first)}

    second = rollout.commit("web:2")
    ok(rollout.playbook("sync"))
    for host in HOSTS:
        assert rollout.image(host) == "web:2" and rollout.available(host), host
        assert rollout.inventory_configmap(host)["data"]["revision"] == second
        assert rollout.last_healthy(host) == second
    status = rollout.status()
    assert rollout.rings() == {"canary": ("Healthy", second), "eu": ("Healthy", second), "rest": ("Healthy", second)}
    assert status["rollout"]["lastHealthy"] == dict((h, second) for h in HOSTS)
    assert [r["clusters"] for r in status["rollout"]["rings"]] == [[HOSTS[0]], [HOSTS[1]], [HOSTS[2]]]

    events = [e for e in rollout.events("RingStarted", "RingHealthy") if second in e[1]]
    at = dict(((reason, message.split(" (")[0]), seconds(moment)) for reason, message, moment in events)
    assert sorted(at) == sorted((reason, "ring " + ring) for reason in ("RingStarted", "RingHealthy")
                                for ring in ("canary", "eu", "rest")), events
    # Each ring starts once the one before is healthy (and baked), and a baked ring lasts at least its bake.
    assert at[("RingStarted", "ring canary")] <= at[("RingHealthy", "ring canary")] <= at[("RingStarted", "ring eu")]
    assert at[("RingHealthy", "ring eu")] <= at[("RingStarted", "ring rest")], events
    assert at[("RingHealthy", "ring eu")] - at[("RingStarted", "ring eu")] >= 6, events
    assert at[("RingHealthy", "ring rest")] - at[("RingStarted", "ring rest")] >= 3, events
    assert any("stayed healthy for its bake of 6s" in message for unused, message, unused_at in events), events

    # A sync with nothing new changes nothing: no ring is baked again, no event.
    count = len(rollout.events("RingStarted", "RingHealthy"))
    run = ok(rollout.playbook("sync"))
    assert not [r for r in run.results if r.get("changed")], [r["_task"] for r in run.results if r.get("changed")]
    assert len(rollout.events("RingStarted", "RingHealthy")) == count


def test_a_bad_canary_rolls_back_halts_the_other_rings_and_is_held_until_cleared(rollout):
    ok(rollout.playbook("sync"))
    good = rollout.revisions[0]
    untouched = dict((h, rollout.deployment(h)["metadata"]["generation"]) for h in HOSTS[1:])

    bad = rollout.commit("web:2", fail="never-ready")
    run = failed(rollout.playbook("sync"))
    lines = final_failures(run)
    key = "%s/%s" % (rollout.namespace, SOURCE)
    canary = [line for line in lines if line.startswith("%s on %s: Failed" % (key, HOSTS[0]))]
    assert canary and "progress deadline exceeded" in canary[0] and "rolled back to %s" % good in canary[0], lines
    for host in HOSTS[1:]:
        assert any(line.startswith("%s on %s: not synced (ring" % (key, host)) for line in lines), lines

    # The canary runs the good revision again, and is healthy; the later rings were never touched.
    assert rollout.image(HOSTS[0]) == "web:1" and rollout.available(HOSTS[0])
    assert FAIL_LABEL not in rollout.deployment(HOSTS[0])["spec"]["template"]["metadata"]["labels"]
    assert rollout.inventory_configmap(HOSTS[0])["data"]["revision"] == good
    assert rollout.last_healthy(HOSTS[0]) == good
    for host in HOSTS[1:]:
        assert rollout.deployment(host)["metadata"]["generation"] == untouched[host], host
        assert rollout.image(host) == "web:1"
        assert rollout.inventory_configmap(host)["data"]["revision"] == good

    status = rollout.status()
    assert rollout.rings() == {"canary": ("RolledBack", good), "eu": ("Halted", good), "rest": ("Halted", good)}
    held = status["rollout"]["held"]
    assert (held["revision"], held["ring"]) == (bad, "canary") and "progress deadline exceeded" in held["reason"]
    ready = [c for c in status["conditions"] if c["type"] == "Ready"][0]
    assert (ready["status"], ready["reason"]) == ("False", "RolloutHeld")
    entries = dict((c["name"], c) for c in status["clusters"])
    assert (entries[HOSTS[0]]["status"], entries[HOSTS[0]]["revision"]) == ("Failed", good)
    assert "rolled back to %s" % good in entries[HOSTS[0]]["message"]
    reasons = [e[0] for e in rollout.events("RingStarted", "RingFailed", "RolledBack", "RingHalted") if bad in e[1]
               or e[0] == "RingHalted"]
    assert reasons[0] == "RingStarted" and sorted(reasons[1:3]) == ["RingFailed", "RolledBack"], reasons
    assert reasons.count("RingHalted") == 2, reasons
    rolled_back = [e[1] for e in rollout.events("RolledBack")]
    assert len(rolled_back) == 1 and rolled_back[0].startswith(
        "%s rolled back from %s to %s: health check failed: Deployment.apps/%s/web: progress deadline exceeded"
        % (HOSTS[0], bad, good, rollout.namespace)), rolled_back

    # The next sync does not retry the held revision: nothing is touched anywhere, the job says why.
    generations = dict((h, rollout.deployment(h)["metadata"]["generation"]) for h in HOSTS)
    run = failed(rollout.playbook("sync"))
    assert "%s: revision %s is not rolled out again: it failed in ring canary" % (key, bad) in \
        "\n".join(final_failures(run))
    assert not [r for r in run.results if r.get("changed")], [r["_task"] for r in run.results if r.get("changed")]
    assert dict((h, rollout.deployment(h)["metadata"]["generation"]) for h in HOSTS) == generations

    # An operator clears it: the revision is tried again (and rolled back again, as it is still bad).
    run = failed(rollout.playbook("sync", {"gitops_rollout_retry": True}))
    assert any(line.startswith("%s on %s: Failed" % (key, HOSTS[0])) and "rolled back to" in line
               for line in final_failures(run))
    assert rollout.deployment(HOSTS[0])["metadata"]["generation"] > generations[HOSTS[0]]
    assert rollout.image(HOSTS[0]) == "web:1"
    assert dict((h, rollout.deployment(h)["metadata"]["generation"]) for h in HOSTS[1:]) == \
        dict((h, generations[h]) for h in HOSTS[1:])

    # A new commit is not held: a fixed revision rolls out to every ring, and the hold is gone.
    fixed = rollout.commit("web:3")
    ok(rollout.playbook("sync"))
    for host in HOSTS:
        assert rollout.image(host) == "web:3" and rollout.available(host), host
    assert rollout.rings() == {"canary": ("Healthy", fixed), "eu": ("Healthy", fixed), "rest": ("Healthy", fixed)}
    assert "held" not in rollout.status()["rollout"]

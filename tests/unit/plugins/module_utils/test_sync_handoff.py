"""Handing a sync run from job to job (plugins/module_utils/federation/sync_handoff.py), against an in-memory store of
Secrets and Leases; the workflow against real clusters is tests/integration/test_awx_workflow.py."""

import copy
import datetime
import os
import re
import stat

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.federation import sync_handoff, sync_run
from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError, ResourceType
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

NOW = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)
SECRET = ResourceType("", "v1", "Secret", "secrets", True)
LEASE = ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True)
PATH = re.compile(r"^/apis?/(?:[^/]+/)?v1/namespaces/([^/]+)/(secrets|leases)(?:/([^/]+))?$")


class _Discovery:
    def find(self, api_version, kind):
        return {"Secret": SECRET, "Lease": LEASE}[kind]


class MemoryCluster:
    """Enough of an API server for the handoff: Secrets and Leases by namespace, label selectors, deletecollection."""

    def __init__(self, server="https://management:6443"):
        self.server = server
        self.objects = {}  # (plural, namespace, name) -> object
        self.created = "2026-11-29T11:59:00Z"

    def discovery(self):
        return _Discovery()

    def request(self, method, path, query=None, body=None, accept=None, **unused):
        namespace, plural, name = PATH.match(path).groups()
        if method == "POST":
            key = (plural, namespace, body["metadata"]["name"])
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", "exists")
            stored = copy.deepcopy(body)
            stored["metadata"].update(resourceVersion="1", creationTimestamp=self.created)
            self.objects[key] = stored
            return stored
        if method == "PUT":
            self.objects[(plural, namespace, name)] = copy.deepcopy(body)
            return body
        if method == "DELETE":
            for key in [k for k, v in self.objects.items() if k[:2] == (plural, namespace)
                        and _matches(v, query["labelSelector"])]:
                del self.objects[key]
            return {}
        if method == "GET" and name:
            if (plural, namespace, name) not in self.objects:
                raise ApiError(404, "NotFound", "not found")
            return copy.deepcopy(self.objects[(plural, namespace, name)])
        items = [copy.deepcopy(v) for k, v in sorted(self.objects.items()) if k[:2] == (plural, namespace)
                 and _matches(v, (query or {}).get("labelSelector"))]
        if accept and "PartialObjectMetadataList" in accept:
            items = [{"metadata": i["metadata"]} for i in items]
        return {"items": items}

    def get(self, resource, name, namespace=None):
        try:
            return self.request("GET", resource.path(namespace, name))
        except ApiError as err:
            if err.not_found:
                return None
            raise

    def list(self, resource, namespace=None, label_selector=None):
        return self.request("GET", resource.path(namespace), query={"labelSelector": label_selector})["items"]

    def secrets(self, namespace):
        return sorted(k[2] for k in self.objects if k[:2] == ("secrets", namespace))


def _matches(obj, selector):
    labels = obj["metadata"].get("labels") or {}
    for term in (selector or "").split(","):
        if not term:
            continue
        key, unused, value = term.partition("=")
        if key not in labels or (value and labels[key] != value):
            return False
    return True


def plan(tmp_path, holder="awx-job-42"):
    """Two projects, one source each (team-a's placed on c1 and c2, team-b's on c2), bundles on the plan job's disk."""
    sources, leases, renders = [], [], []
    for namespace, clusters in (("team-a", ["c1", "c2"]), ("team-b", ["c2"])):
        bundle = tmp_path / ("%s.yaml" % namespace)
        bundle.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n" % namespace)
        render = dict(id=0, url="https://git/%s.git" % namespace, path=".", clusters=clusters)
        source = dict(name="app", namespace=namespace, owner="gitops/%s/app" % namespace, generation=1,
                      suspended=False, terminating=False, placed=clusters, unplaced=[], errors=[], renders=[render],
                      clusters=dict((c, dict(namespace=namespace, render=0, prune=True)) for c in clusters))
        sources.append(source)
        leases.append(dict(item=source))
        renders.append(dict(item=dict(key=namespace + "/app", namespace=namespace, source="app", render=render),
                            revision="main@sha1:" + "a" * 40, bundle=str(bundle)))
    result = sync_run.sync_plan(sources, leases, renders, ["team-a", "team-b"],
                                [dict(item="team-a"), dict(item="team-b")])
    result.update(holder=holder, lease_duration=900, scratch_dir=None,
                  secrets=[dict(namespace="team-a", name="git", placed=["c1", "c2"])])
    return result


def test_the_run_id_is_name_safe_and_tied_to_the_holder():
    assert sync_handoff.run_id("awx-job-42") == sync_handoff.run_id("awx-job-42")
    assert sync_handoff.run_id("awx-job-42").startswith("awx-job-42-")
    assert sync_handoff.run_id("awx-job-42") != sync_handoff.run_id("awx-job-43")
    odd = sync_handoff.run_id("ansible-playbook@Host.example:1234-99" + "x" * 80)
    assert re.match(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", odd) and len(odd) <= 40


def test_the_plan_goes_over_as_a_small_reference_and_comes_back_whole(tmp_path):
    cluster, original = MemoryCluster(), plan(tmp_path)
    published = sync_handoff.publish(cluster, original)
    run = published["run"]
    assert run == dict(id=sync_handoff.run_id("awx-job-42"), holder="awx-job-42", projects=["team-a", "team-b"],
                       management=sync_handoff.management_id(cluster.server), stored=True)
    assert len(repr(run)) < 300
    # Each project holds its own part of the plan and its own bundles, labelled with the run.
    assert cluster.secrets("team-a") == ["gitops-run-%s-bundle-0-0" % run["id"], "gitops-run-%s-plan" % run["id"]]
    assert cluster.secrets("team-b") == ["gitops-run-%s-bundle-1-0" % run["id"], "gitops-run-%s-plan" % run["id"]]
    loaded = sync_handoff.load_plan(cluster, run)
    assert sorted(e["key"] for e in loaded["sources"]) == ["team-a/app", "team-b/app"]
    assert loaded["secret_projects"] == ["team-a", "team-b"] and loaded["holder"] == "awx-job-42"
    # No path of the plan job's disk goes over; the apply side fetches only the bundles of its cluster.
    assert all(s.get("bundle") is None for e in loaded["sources"] for s in e["clusters"].values())
    with sync_handoff.BundleDirectory() as directory:
        fetched = sync_handoff.fetch_bundles(cluster, loaded, "c1", directory)
        assert list(fetched) == ["gitops-run-%s-bundle-0" % run["id"]]
        path = loaded["sources"][0]["clusters"]["c1"]["bundle"]
        assert open(path).read() == open(original["sources"][0]["clusters"]["c1"]["bundle"]).read()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not os.path.exists(directory)
    assert sync_run.cluster_work(loaded, "c2")[0]["revision"] == "main@sha1:" + "a" * 40


def test_a_large_bundle_is_split_into_chunks_and_checked_on_the_way_back(tmp_path, monkeypatch):
    monkeypatch.setattr(sync_handoff, "CHUNK_BYTES", 64)
    cluster, original = MemoryCluster(), plan(tmp_path)
    bundle = original["sources"][0]["clusters"]["c1"]["bundle"]
    with open(bundle, "w") as handle:
        handle.write("".join("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c%d\n" % i for i in range(50)))
    run = sync_handoff.publish(cluster, original)["run"]
    chunks = [n for n in cluster.secrets("team-a") if "-bundle-0-" in n]
    assert len(chunks) > 2
    loaded = sync_handoff.load_plan(cluster, run)
    with sync_handoff.BundleDirectory() as directory:
        sync_handoff.fetch_bundles(cluster, copy.deepcopy(loaded), "c1", directory)
        assert open(os.path.join(directory, "gitops-run-%s-bundle-0.yaml" % run["id"])).read() == open(bundle).read()
    # A chunk changed after the plan: refused, nothing applied from it.
    key = ("secrets", "team-a", chunks[0])
    cluster.objects[key]["data"]["chunk"] = cluster.objects[("secrets", "team-a", chunks[1])]["data"]["chunk"]
    with sync_handoff.BundleDirectory() as directory:
        with pytest.raises(FederationError, match="bundle team-a/.* rerun the plan job"):
            sync_handoff.fetch_bundles(cluster, loaded, "c1", directory)


def test_reports_are_stored_per_project_and_merged_back_per_cluster(tmp_path):
    cluster = MemoryCluster()
    run = sync_handoff.publish(cluster, plan(tmp_path))["run"]
    report = {"sources": {"team-a/app": {"cluster": "c2", "status": "Applied"},
                          "team-b/app": {"cluster": "c2", "status": "Failed", "message": "refused"}},
              "secrets": {"team-a": {"git": {"cluster": "c2", "status": "Applied"}}}, "lease_lost": "lost"}
    names = sync_handoff.store_result(cluster, run, "c2", report)
    assert len(names) == 2
    sync_handoff.store_result(cluster, run, "c2", report)  # a slice run again overwrites its result
    assert sync_handoff.load_reports(cluster, run) == {"c2": dict(report, secrets=dict(report["secrets"]))}


def test_a_cluster_without_a_stored_result_is_recorded_as_failed(tmp_path):
    cluster = MemoryCluster()
    run = sync_handoff.publish(cluster, plan(tmp_path))["run"]
    loaded = sync_handoff.load_plan(cluster, run)
    reports = {"c1": {"sources": {"team-a/app": {"cluster": "c1", "status": "Applied"}}, "secrets": {}}}
    missing = sync_handoff.missing_reports(loaded, reports, ["c1", "c2", "c3"])
    assert sorted(missing) == ["c2"]  # c3 has no work in the plan
    assert missing["c2"]["sources"]["team-b/app"]["status"] == "Failed"
    assert "no result from this cluster" in missing["c2"]["sources"]["team-b/app"]["message"]
    lines = sync_run.failures(loaded, dict(reports, **missing), ["c1", "c2", "c3"])
    assert any(line.startswith("team-a/app on c2: Failed: no result") for line in lines)


def test_references_the_management_cluster_cannot_serve_are_refused(tmp_path):
    cluster = MemoryCluster()
    checked = sync_handoff.publish(cluster, plan(tmp_path), check_mode=True)
    assert checked["run"]["stored"] is False and cluster.objects == {}
    with pytest.raises(FederationError, match="planned in check mode"):
        sync_handoff.load_plan(cluster, checked["run"])
    run = sync_handoff.publish(cluster, plan(tmp_path))["run"]
    with pytest.raises(FederationError, match="another management cluster"):
        sync_handoff.load_plan(MemoryCluster("https://elsewhere:6443"), run)
    with pytest.raises(FederationError, match="does not belong to holder"):
        sync_handoff.load_plan(cluster, dict(run, holder="awx-job-43"))
    sync_handoff.delete_run(cluster, run)
    assert cluster.objects == {}
    with pytest.raises(FederationError, match="does not exist: the run was recorded already"):
        sync_handoff.load_plan(cluster, run)


def _lease(cluster, namespace, holder, renewed):
    cluster.objects[("leases", namespace, "gitops-sync-app")] = {"metadata": {"name": "gitops-sync-app"}, "spec": {
        "holderIdentity": holder, "leaseDurationSeconds": 900,
        "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


def test_objects_of_runs_that_never_recorded_are_collected_once_their_leases_are_gone(tmp_path):
    cluster = MemoryCluster()
    cluster.created = "2026-11-29T10:00:00Z"  # two hours before NOW, past the 900 s lease duration
    early = NOW - datetime.timedelta(hours=3)  # when the runs published: nothing was stale yet
    crashed = sync_handoff.publish(cluster, plan(tmp_path, holder="awx-job-1"), now=early)["run"]
    live = sync_handoff.publish(cluster, plan(tmp_path, holder="awx-job-2"), now=early)["run"]
    _lease(cluster, "team-a", "awx-job-2", NOW - datetime.timedelta(seconds=10))
    _lease(cluster, "team-b", "awx-job-2", NOW - datetime.timedelta(seconds=10))
    store = sync_handoff.RunStore(cluster)
    assert sync_handoff.collect_stale(store, cluster, "team-a", "awx-job-3-x", NOW) == ["team-a/%s" % crashed["id"]]
    assert all(live["id"] in name for name in cluster.secrets("team-a"))
    # Young objects are kept even without a Lease (a run that took none in the project is given its duration).
    cluster.created = "2026-11-29T11:59:00Z"
    young = sync_handoff.publish(cluster, plan(tmp_path, holder="awx-job-4"), now=early)["run"]
    assert sync_handoff.collect_stale(store, cluster, "team-b", "other", NOW) == ["team-b/%s" % crashed["id"]]
    assert any(young["id"] in name for name in cluster.secrets("team-b"))


def test_sources_with_rollout_rings_leave_a_stored_run_as_failed():
    from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_handoff import RINGS_REFUSED, refuse_rings
    plan = {"sources": [
        {"key": "a/ringed", "ready": True, "rings": [{"name": "canary"}], "clusters": {"c1": {"bundle": "/x"}}},
        {"key": "a/plain", "ready": True, "rings": [], "clusters": {"c1": {"bundle": "/y"}}}]}
    refuse_rings(plan)
    ringed, plain = plan["sources"]
    assert (ringed["ready"], ringed["error"], ringed["clusters"]) == (False, RINGS_REFUSED, {})
    assert plain["ready"] and plain["clusters"] == {"c1": {"bundle": "/y"}}

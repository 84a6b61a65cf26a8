"""The pure functions that carry one sync's data between its plays (plugins/filter/sync.py)."""

import re

import pytest
from ansible.errors import AnsibleFilterError
from jinja2 import Undefined

from ansible_collections.gitops.federation.plugins.filter import sync
from ansible_collections.gitops.federation.plugins.module_utils.federation import sync_run

REV_A = "main@sha1:" + "a" * 40
REV_B = "main@sha1:" + "b" * 40
KEY = "team-a/podinfo"


def source(name="podinfo", namespace="team-a", renders=None, clusters=None, **extra):
    """A source as gitops_source_info returns it: two renders (one per overlay), placed on c1 and c2."""
    if renders is None:
        renders = [dict(id=0, url="https://git/app.git", path="overlays/c1", clusters=["c1"]),
                   dict(id=1, url="https://git/app.git", path="overlays/c2", clusters=["c2"])]
    if clusters is None:
        clusters = {"c1": dict(namespace=namespace, render=0, prune=True, overrides=[]),
                    "c2": dict(namespace=namespace, render=1, prune=True, overrides=[])}
    entry = dict(name=name, namespace=namespace, owner="gitops/%s/%s" % (namespace, name), generation=3,
                 suspended=False, terminating=False, placed=sorted(clusters), unplaced=["c3"], renders=renders,
                 clusters=clusters, errors=[], target_namespace=None)
    entry.update(extra)
    return entry


def lease_ok(src):
    return dict(item=src, changed=False, lease="gitops-sync-" + src["name"], holder="me")


def render_ok(src, render, revision=REV_A):
    return dict(item=dict(key=sync_run.source_key(src), namespace=src["namespace"], source=src["name"], render=render),
                revision=revision, bundle="/cache/%s-%d.yaml" % (src["name"], render["id"]))


def plan_for(src, leases=None, renders=None):
    leases = [lease_ok(src)] if leases is None else leases
    renders = [render_ok(src, r) for r in src["renders"]] if renders is None else renders
    return sync_run.sync_plan([src], leases, renders, [src["namespace"]])


# -- connection and inventory -------------------------------------------------------------------------------


def test_cluster_connection_keeps_defined_connection_options_only():
    host_vars = dict(kubeconfig="/k/c1", context=None, api_key=Undefined(), validate_certs=False,
                     cluster_labels={"env": "prod"}, ansible_connection="local")
    assert sync.cluster_connection(host_vars) == dict(kubeconfig="/k/c1", validate_certs=False)


def test_inventory_clusters_reads_labels_as_strings_and_defaults_to_none():
    hostvars = {"c1": {"cluster_labels": {"env": "prod", "tier": 1}}, "c2": {}, "c3": {"cluster_labels": None},
                "c4": {"cluster_labels": Undefined()}}
    assert sync.inventory_clusters(hostvars, ["c1", "c2", "c3", "c4"]) == [
        dict(name="c1", labels={"env": "prod", "tier": "1"}), dict(name="c2", labels={}),
        dict(name="c3", labels={}), dict(name="c4", labels={})]


@pytest.mark.parametrize("labels", ["env=prod", ["env", "prod"], 3])
def test_inventory_clusters_rejects_labels_that_are_not_a_mapping_naming_the_host(labels):
    with pytest.raises(AnsibleFilterError, match=r"host c2: cluster_labels must be a mapping"):
        sync.inventory_clusters({"c1": {}, "c2": {"cluster_labels": labels}}, ["c1", "c2"])


# -- render jobs and the plan ---------------------------------------------------------------------------------


def test_render_jobs_only_for_sources_whose_lease_is_held():
    held, refused, suspended = source("held"), source("refused"), source("off", suspended=True)
    leases = [lease_ok(held), dict(item=refused, failed=True, msg="held by other-run"),
              dict(item=suspended, skipped=True)]
    jobs = sync_run.render_jobs([held, refused, suspended], leases)
    assert [(j["key"], j["render"]["id"]) for j in jobs] == [("team-a/held", 0), ("team-a/held", 1)]
    assert jobs[0]["namespace"] == "team-a" and jobs[0]["source"] == "held"
    assert sync_run.render_jobs([held], None) == []


def test_plan_of_a_source_whose_renders_all_succeeded_is_ready_with_each_clusters_bundle():
    src = source()
    renders = [render_ok(src, src["renders"][0], REV_A), render_ok(src, src["renders"][1], REV_B)]
    plan = plan_for(src, renders=renders)
    assert plan["projects"] == ["team-a"]
    [entry] = plan["sources"]
    assert entry["ready"] is True and entry["error"] is None
    assert entry["revision"] == REV_A  # the first render's revision
    assert entry["clusters"]["c1"]["revision"] == REV_A and entry["clusters"]["c1"]["bundle"] == "/cache/podinfo-0.yaml"
    assert entry["clusters"]["c2"]["revision"] == REV_B and entry["clusters"]["c2"]["bundle"] == "/cache/podinfo-1.yaml"
    assert entry["target_namespace"] == "team-a" and entry["record"] is True
    assert (entry["key"], entry["owner"], entry["generation"]) == (KEY, "gitops/team-a/podinfo", 3)
    assert entry["placed"] == ["c1", "c2"] and entry["unplaced"] == ["c3"]


def test_plan_keeps_an_explicit_target_namespace():
    [entry] = plan_for(source(target_namespace="apps"))["sources"]
    assert entry["target_namespace"] == "apps"


@pytest.mark.parametrize("render_result", [
    dict(failed=True, msg="git: list refs of https://git/app.git did not finish within 20s"),
    dict(skipped=True),
    None,  # the render never ran
], ids=["failed", "skipped", "missing"])
def test_a_failed_or_missing_render_makes_the_source_not_ready_and_never_applied(render_result):
    src = source()
    renders = [render_ok(src, src["renders"][0])]  # the first render is fine: a partial render is not enough
    if render_result is not None:
        renders.append(dict(render_result, item=dict(key=KEY, render=src["renders"][1])))
    plan = plan_for(src, renders=renders)
    [entry] = plan["sources"]
    assert entry["ready"] is False
    assert entry["clusters"] == {} and entry["revision"] is None
    assert entry["record"] is True  # this run holds the lease: it records the failure
    assert "fetch/render of https://git/app.git (path overlays/c2) failed" in entry["error"]
    if render_result and render_result.get("msg"):
        assert "did not finish within 20s" in entry["error"]
    for cluster in ("c1", "c2", "c3"):
        assert sync_run.cluster_work(plan, cluster) == []


@pytest.mark.parametrize("leases, message", [
    ([], "not synced: no lease was taken for it"),
    (None, "not synced: no lease was taken for it"),
    ("skipped", "not synced: no lease was taken for it"),
    ("failed", "source team-a/podinfo: being synced by another run: lease gitops-sync-podinfo is held by other-run"),
    ("failed-without-message", "the sync lease could not be taken"),
], ids=["no-result", "no-results-at-all", "skipped", "held-by-another-run", "failed-without-message"])
def test_a_missing_or_refused_lease_makes_the_source_not_ready(leases, message):
    src = source()
    if leases == "skipped":
        leases = [dict(item=src, skipped=True)]
    elif leases == "failed":
        leases = [dict(item=src, failed=True, msg=message)]
    elif leases == "failed-without-message":
        leases = [dict(item=src, failed=True)]
    plan = sync_run.sync_plan([src], leases, [render_ok(src, r) for r in src["renders"]], ["team-a"])
    [entry] = plan["sources"]
    assert entry["ready"] is False and entry["clusters"] == {}
    assert entry["error"] == message
    # A lease another run holds (or that could not be taken): that run records the source's status, not this one.
    assert entry["record"] is (not any(r.get("failed") for r in leases or []))
    assert sync_run.cluster_work(plan, "c1") == [] and sync_run.cluster_work(plan, "c3") == []


def test_errors_of_the_source_itself_make_it_not_ready_whatever_the_lease():
    src = source(errors=["FederatedGitRepository team-a/podinfo does not exist", "override path x is unknown"],
                 renders=[], clusters={})
    [entry] = plan_for(src, leases=[])["sources"]
    assert entry["ready"] is False
    assert entry["error"] == "FederatedGitRepository team-a/podinfo does not exist; override path x is unknown"


@pytest.mark.parametrize("flag", ["suspended", "terminating"])
def test_suspended_and_terminating_sources_are_planned_but_never_ready(flag):
    src = source(**{flag: True})
    plan = plan_for(src)
    [entry] = plan["sources"]
    assert entry[flag] is True and entry["ready"] is False
    assert entry["error"] is None  # not a failure: the record step says Suspended / the teardown handles it
    assert sync_run.cluster_work(plan, "c1") == [] and sync_run.cluster_work(plan, "c3") == []


def test_plan_without_renders_is_ready_with_no_revision():
    src = source(renders=[], clusters={}, placed=[], unplaced=["c1"])
    [entry] = plan_for(src)["sources"]
    assert entry["ready"] is True and entry["revision"] is None and entry["clusters"] == {}


# -- cluster work ---------------------------------------------------------------------------------------------


def test_cluster_work_applies_placed_sources_and_removes_unplaced_ones():
    src = source()
    src["clusters"]["c2"]["suspended"] = True  # suspended on c2 by an override
    plan = plan_for(src)
    [c1] = sync_run.cluster_work(plan, "c1")
    assert c1["state"] == "present" and c1["suspended"] is False
    assert (c1["key"], c1["owner"], c1["namespace"], c1["revision"]) == (KEY, "gitops/team-a/podinfo", "team-a", REV_A)
    assert c1["bundle"] == "/cache/podinfo-0.yaml" and c1["prune"] is True
    [c2] = sync_run.cluster_work(plan, "c2")
    assert c2["state"] == "present" and c2["suspended"] is True
    [c3] = sync_run.cluster_work(plan, "c3")  # in the inventory, not in the placement: what was there goes
    assert c3 == dict(key=KEY, owner="gitops/team-a/podinfo", namespace="team-a", state="absent", suspended=False,
                      revision=REV_A)
    assert sync_run.cluster_work(plan, "c9") == []  # neither placed nor a known unplaced cluster


def test_cluster_work_carries_the_operators_policy_to_apply_and_removal():
    policy = dict(cluster_scoped_kinds=["ClusterRole"], namespaces=[], prune_crds=False, scope="platform",
                  service_account=dict(namespace="team-a", name="deployer"))
    plan = plan_for(source(policy=policy, policy_note="claims more"))
    assert plan["sources"][0]["policy"] == policy and plan["sources"][0]["policy_note"] == "claims more"
    assert sync_run.cluster_work(plan, "c1")[0]["policy"] == policy
    assert sync_run.cluster_work(plan, "c3")[0]["policy"] == policy  # CRDs kept, same ServiceAccount on removal


def test_cluster_work_removes_from_the_target_namespace():
    plan = plan_for(source(target_namespace="apps"))
    assert sync_run.cluster_work(plan, "c3")[0]["namespace"] == "apps"


def test_cluster_work_of_an_empty_plan():
    assert sync_run.cluster_work({}, "c1") == []
    assert sync_run.cluster_work(dict(sources=[]), "c1") == []


# -- per-cluster results --------------------------------------------------------------------------------------


def work(state="present", **extra):
    entry = dict(key=KEY, owner="gitops/team-a/podinfo", namespace="team-a", state=state, suspended=False,
                 revision=REV_A)
    entry.update(extra)
    return entry


def test_cluster_results_maps_each_outcome():
    counts = dict(created=3, unchanged=1)
    results = [
        dict(item=work(), changed=True, counts=counts),
        dict(item=work(key="team-a/down"), failed=True, status=0, msg="cannot reach the API server", counts={}),
        dict(item=work(key="team-a/denied"), failed=True, status=403, msg="configmaps is forbidden"),
        dict(item=work(key="team-a/broken"), failed=True, msg="invalid object"),
        dict(item=work(key="team-a/paused", suspended=True), skipped=True),
        dict(item=work(key="team-a/skipped"), skipped=True),
        dict(item=work(key="team-a/gone", state="absent", revision=None), changed=True, counts=dict(deleted=2)),
        dict(item=work(key="team-a/never-here", state="absent"), changed=False, counts={}),
    ]
    sources = sync_run.cluster_results(results, [], "c1")["sources"]
    assert sources[KEY] == dict(cluster="c1", status="Applied", counts=counts, revision=REV_A)
    assert sources["team-a/down"] == dict(cluster="c1", status="Unreachable", counts={},
                                          message="cannot reach the API server", revision=REV_A)
    assert sources["team-a/denied"]["status"] == "Failed"
    assert sources["team-a/denied"]["message"] == "configmaps is forbidden"
    assert sources["team-a/broken"]["status"] == "Failed"  # no HTTP status: not an unreachable cluster
    assert sources["team-a/paused"] == dict(cluster="c1", status="Suspended",
                                            message="suspended on this cluster by an override")
    assert "team-a/skipped" not in sources
    assert sources["team-a/gone"] == dict(cluster="c1", status="Deleted", counts=dict(deleted=2),
                                          message="removed: the cluster left the placement")
    assert "team-a/never-here" not in sources


def test_cluster_results_reports_health_only_when_waiting():
    healthy = dict(item=work(wait=True), changed=False, counts={}, health=[dict(status="Current")] * 2)
    unhealthy = dict(item=work(key="team-a/slow", wait=True), changed=True, counts={},
                     health=[dict(status="Current"), dict(status="InProgress")])
    no_wait = dict(item=work(key="team-a/fast"), changed=True, counts={}, health=[dict(status="InProgress")])
    sources = sync_run.cluster_results([healthy, unhealthy, no_wait], None, "c1")["sources"]
    assert sources[KEY]["healthy"] is True
    assert sources["team-a/slow"]["healthy"] is False
    assert "healthy" not in sources["team-a/fast"]


def test_cluster_results_of_federated_secrets():
    secret_results = [
        dict(item="team-a", status_results={"git": dict(cluster="c1", status="Applied")}),
        dict(item="team-b", failed=True, status=0, msg="cannot reach the API server"),
        dict(item="team-c", failed=True, status=403, msg="forbidden"),
        dict(item="team-d", skipped=True),
        dict(item="team-e"),
    ]
    secrets = sync_run.cluster_results(None, secret_results, "c1")["secrets"]
    assert secrets["team-a"] == {"git": dict(cluster="c1", status="Applied")}
    assert secrets["team-b"] == {"*": dict(cluster="c1", status="Unreachable", message="cannot reach the API server")}
    assert secrets["team-c"]["*"]["status"] == "Failed"
    assert "team-d" not in secrets
    assert secrets["team-e"] == {}


# -- collecting on the management host ------------------------------------------------------------------------


def hostvars_with_reports():
    return {
        "c1": {"gitops_cluster_results": dict(
            sources={KEY: dict(cluster="c1", status="Applied", revision=REV_A)},
            secrets={"team-a": {"git": dict(cluster="c1", status="Applied")}})},
        "c2": {"gitops_cluster_results": dict(
            sources={KEY: dict(cluster="c2", status="Unreachable", message="connection refused")},
            secrets={"team-a": {"*": dict(cluster="c2", status="Unreachable", message="connection refused")}})},
        "c3": {"gitops_cluster_results": Undefined()},  # did not run (a failed batch, a limit)
        "c4": {},
        "c5": {"gitops_cluster_results": dict(sources={}, secrets={
            "team-a": {"*": dict(cluster="c5", status="Failed", message="forbidden")}})},
    }


def test_collect_results_gathers_one_sources_result_from_every_cluster_that_reported():
    hostvars = hostvars_with_reports()
    assert sync.collect_results(hostvars, ["c1", "c2", "c3", "c4", "c5", "missing"], KEY) == [
        dict(cluster="c1", status="Applied", revision=REV_A),
        dict(cluster="c2", status="Unreachable", message="connection refused")]
    assert sync.collect_results(hostvars, ["c1"], "team-a/other") == []
    assert sync.collect_results(hostvars, [], KEY) == []


def test_collect_secret_results_counts_whole_project_failures_only_where_the_secret_is_placed():
    hostvars = hostvars_with_reports()
    hosts = ["c1", "c2", "c3", "c4", "c5"]
    results = sync_run.collect_secret_results(sync._reports(hostvars, hosts), hosts, "team-a", "git", ["c1", "c2"])
    assert [(r["cluster"], r["status"]) for r in results] == [("c1", "Applied"), ("c2", "Unreachable")]
    hosts = ["c1", "c2"]
    assert sync_run.collect_secret_results(sync._reports(hostvars, hosts), hosts, "team-b", "git", hosts) == []


def test_rollout_failures_names_the_clusters_of_earlier_batches_that_failed():
    hostvars = hostvars_with_reports()
    hostvars["c6"] = {"gitops_cluster_results": dict(sources={"team-a/x": dict(cluster="c6", status="Failed")})}
    hostvars["c7"] = {"gitops_cluster_results": dict(sources={"team-a/x": dict(cluster="c7", status="Suspended")})}
    # c5 only failed its federated secrets: the rollout halts on failed sources.
    assert sync.rollout_failures(hostvars, ["c1", "c2", "c3", "c4", "c5", "c6", "c7"]) == ["c2", "c6"]
    assert sync.rollout_failures(hostvars, ["c1", "c3", "c4"]) == []


def test_failures_lists_source_errors_and_every_failed_cluster():
    src = source()
    plan = plan_for(src, leases=[dict(item=src, failed=True, msg="held by other-run")])
    hosts = ["c1", "c2", "c3", "c5"]
    lines = sync_run.failures(plan, sync._reports(hostvars_with_reports(), hosts), hosts)
    assert lines == [
        "team-a/podinfo: held by other-run",
        "team-a/podinfo on c2: Unreachable: connection refused",
        "federated secrets of team-a on c2: connection refused",
        "federated secrets of team-a on c5: forbidden",
    ]
    assert sync_run.failures(plan_for(source()), sync._reports(hostvars_with_reports(), ["c1"]), ["c1"]) == []


def test_failures_lists_clusters_a_halted_rollout_left_out():
    hostvars = {"c1": {"gitops_cluster_results": dict(sources={KEY: dict(cluster="c1", status="Failed",
                                                                         message="forbidden")})},
                "c2": {"gitops_cluster_results": dict(sources={}, secrets={},
                                                      halted="the rollout halted after failures on c1")}}
    assert sync_run.failures(plan_for(source()), sync._reports(hostvars, ["c1", "c2"]), ["c1", "c2"]) == [
        "team-a/podinfo on c1: Failed: forbidden",
        "c2: not synced: the rollout halted after failures on c1",
    ]


# -- the status table -----------------------------------------------------------------------------------------


def listed(name="podinfo", placed=("c1", "c2"), clusters=(), **extra):
    entry = dict(namespace="team-a", name=name, placed=list(placed), suspended=False, terminating=False, errors=[],
                 status=dict(clusters=list(clusters)))
    entry.update(extra)
    return entry


def cells(line):
    cells_ = re.split(r"\s{2,}", line, maxsplit=7)
    return cells_[:2] + cells_[3:]  # without SCOPE (tested apart)


def test_status_table_has_a_header_and_one_row_per_placed_or_recorded_cluster():
    source_ = listed(placed=("c2", "c1"), clusters=[
        dict(name="c1", status="Applied", revision=REV_A, lastAppliedTime="2026-01-02T03:04:05Z"),
        dict(name="c2", status="Unreachable", revision=REV_A, message="connection refused"),
        dict(name="c0", status="Applied", revision=REV_B, lastAppliedTime="2026-01-01T00:00:00Z"),
    ])
    lines = sync.status_table([source_])
    assert lines[0].split() == ["PROJECT", "SOURCE", "SCOPE", "CLUSTER", "STATE", "REVISION", "LAST", "APPLIED",
                                "MESSAGE"]
    rows = [cells(line) for line in lines[1:]]
    # Placed clusters first in placement order, then clusters only the status still lists (sorted).
    assert rows == [
        ["team-a", "podinfo", "c2", "Unreachable", "main@sha1:aaaaaaa", "-", "connection refused"],
        ["team-a", "podinfo", "c1", "Applied", "main@sha1:aaaaaaa", "2026-01-02T03:04:05Z"],
        ["team-a", "podinfo", "c0", "Applied", "main@sha1:bbbbbbb", "2026-01-01T00:00:00Z"],
    ]
    # Columns line up: every row's STATE starts where the header's does.
    column = lines[0].index("STATE")
    assert all(line[column - 2:column] == "  " and line[column] != " " for line in lines)


def test_status_table_states_of_suspended_terminating_pending_and_unplaced_sources():
    suspended = listed("paused", suspended=True, clusters=[
        dict(name="c1", status="Applied", revision=REV_A), dict(name="c2", status="Failed", message="forbidden")])
    terminating = listed("leaving", placed=(), suspended=True, terminating=True, clusters=[
        dict(name="c2", status="Unreachable", message="refused"), dict(name="c1", status="Applied")])
    pending = listed("new", placed=("c1",))
    nowhere = listed("nowhere", placed=())
    broken = listed("broken", placed=(), errors=["FederatedGitRepository team-a/broken does not exist"])
    rows = [cells(line) for line in sync.status_table([suspended, terminating, pending, nowhere, broken])[1:]]
    states = [(row[1], row[2], row[3]) for row in rows]
    assert states == [
        ("paused", "c1", "Suspended"), ("paused", "c2", "Failed"),  # a failure stays visible when suspended
        ("leaving", "c1", "Terminating"), ("leaving", "c2", "Unreachable"),
        ("new", "c1", "Pending"),
        ("nowhere", "-", "NotPlaced"),
        ("broken", "-", "NotPlaced"),
    ]
    assert rows[4][4:6] == ["-", "-"]  # never applied: no revision, no time
    assert rows[5][6] == "placed on no inventory cluster"
    assert rows[6][6] == "FederatedGitRepository team-a/broken does not exist"


def test_status_table_shows_platform_sources():
    platform = listed("addons", placed=("c1",))
    platform["status"]["scope"] = "platform"
    tenant = listed("app", placed=("c1",))
    rows = [re.split(r"\s{2,}", line) for line in sync.status_table([platform, tenant])[1:]]
    assert [(row[1], row[2]) for row in rows] == [("addons", "platform"), ("app", "tenant")]


def test_source_policies_keep_only_the_policy_options_of_gitops_projects():
    projects = [{"namespace": "ops", "secrets": [{"name": "git", "password": "s3cret"}], "sources": [
        {"name": "addons", "url": "https://git.example/addons.git", "secret": "git",
         "platform": {"cluster_scoped_kinds": "all"}, "service_account": "deployer"},
        {"name": "app", "url": "https://git.example/app.git"}]}]
    assert sync.source_policies(projects) == [
        {"namespace": "ops", "name": "addons", "platform": {"cluster_scoped_kinds": "all"},
         "service_account": "deployer"},
        {"namespace": "ops", "name": "app"}]
    assert "s3cret" not in repr(sync.source_policies(projects))
    assert sync.source_policy(projects, "ops", "addons") == {"platform": {"cluster_scoped_kinds": "all"},
                                                             "service_account": "deployer"}
    assert sync.source_policy(projects, "ops", "other") == {}


def test_status_table_of_nothing_is_just_the_header():
    assert len(sync.status_table([])) == 1


@pytest.mark.parametrize("revision, short", [
    (REV_A, "main@sha1:aaaaaaa"), ("v1.2.3@sha1:" + "c" * 40, "v1.2.3@sha1:ccccccc"), ("sha1:" + "d" * 40, "sha1:ddddddd"),
    ("not-a-sha", "not-a-sha"), (None, "-"), ("", "-"),
])
def test_short_revision(revision, short):
    assert sync._short(revision) == short


def test_filters_are_registered_under_their_playbook_names():
    # Only what roles and playbooks use: the decisions are tested on sync_run itself (above), not through filters
    # that merely delegated to it.
    assert set(sync.FilterModule().filters()) == {"cluster_connection", "inventory_clusters", "collect_results",
                                                  "rollout_failures", "sync_reports", "status_table",
                                                  "rollout_halts", "cluster_waves", "merge_reports",
                                                  "source_policies", "source_policy"}


def test_secrets_are_propagated_only_for_projects_whose_secrets_lease_is_held():
    leases = [{"item": "team-a", "changed": False},
              {"item": "team-b", "failed": True, "msg": "the federated secrets of team-b: being synced by another run"},
              {"item": "team-c", "skipped": True}]
    plan = sync_run.sync_plan([], [], [], ["team-a", "team-b", "team-c"], leases)
    assert plan["projects"] == ["team-a", "team-b", "team-c"]
    assert plan["secret_projects"] == ["team-a"]
    assert plan["secret_errors"] == ["the federated secrets of team-b: being synced by another run"]
    assert sync_run.sync_plan([], [], [], ["team-a"])["secret_projects"] == []

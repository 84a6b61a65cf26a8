"""The steps of a sync run that need no cluster (plugins/module_utils/federation/sync_steps.py)."""

from ansible_collections.gitops.federation.plugins.module_utils.federation import sync_run
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_steps import bundle_path, failed_report, trigger_phrase


def test_bundles_are_kept_per_management_cluster():
    one = bundle_path("/cache", "https://10.0.0.1:6443", "team-a", "app", 0)
    other = bundle_path("/cache", "https://10.0.0.2:6443", "team-a", "app", 0)
    assert one != other
    assert one.startswith("/cache/bundles/") and one.endswith("/team-a/app/render-0.yaml")
    assert bundle_path("/cache", "https://10.0.0.1:6443/", "team-a", "app", 0) == one


def plan():
    source = dict(name="app", namespace="team-a", owner="gitops/team-a/app", generation=1, suspended=False,
                  terminating=False, placed=["c1"], unplaced=["c2"], errors=[], target_namespace=None,
                  renders=[dict(id=0, url="https://git/app.git", path=".", clusters=["c1"])],
                  clusters={"c1": dict(namespace="team-a", render=0, prune=True, overrides=[])})
    leases = [dict(item=source)]
    renders = [dict(item=dict(key="team-a/app", namespace="team-a", source="app", render=source["renders"][0]),
                    revision="main@sha1:" + "a" * 40, bundle="/b.yaml")]
    return sync_run.sync_plan([source], leases, renders, ["team-a"], [dict(item="team-a")])


def test_a_cluster_the_module_could_not_work_on_reports_all_its_work_failed():
    err = FederationError("cannot reach the API server", status=0)
    outcome = failed_report(plan(), "c1", err)
    assert outcome["report"]["sources"]["team-a/app"]["status"] == "Unreachable"
    assert outcome["report"]["secrets"]["team-a"]["*"]["status"] == "Unreachable"
    assert len(outcome["failed"]) == 2 and outcome["changed"] is False
    # c2 only has to remove the source: that fails too, with the error of this cluster.
    elsewhere = failed_report(plan(), "c2", FederationError("kubeconfig file /x does not exist"))
    assert elsewhere["report"]["sources"]["team-a/app"]["status"] == "Failed"


def test_failures_name_a_cluster_whose_run_lost_its_leases_while_it_worked():
    lost = "source team-a/app: Lease team-a/gitops-sync-app was taken by another run"
    reports = {"c1": dict(sources={}, secrets={}, lease_lost=lost)}
    assert sync_run.failures(plan(), reports, ["c1"]) == [
        "c1: source team-a/app: Lease team-a/gitops-sync-app was taken by another run"]


def test_the_trigger_of_a_run_reads_as_a_phrase_for_its_events():
    push = dict(kind="push", ref="refs/heads/main", commit="1a2b3c4d5e6f7a8b9c0d", delivery="42", scm="gitea")
    assert trigger_phrase(push) == "push of refs/heads/main at 1a2b3c4d5e6f (gitea delivery 42)"
    assert trigger_phrase(dict(kind="schedule")) == "schedule"
    assert trigger_phrase(None) is None and trigger_phrase({}) is None

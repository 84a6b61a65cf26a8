"""Unit tests of rollout rings: ring planning, waves, halts, holds, bake, and the status and events of a rollout."""

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.federation import rollout, sync_run
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.gitops_sources import (
    desired_objects, duration_seconds, source_view)
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import InventoryCluster

CLUSTERS = [InventoryCluster("canary-1", {"region": "us"}), InventoryCluster("eu-1", {"region": "eu"}),
            InventoryCluster("eu-2", {"region": "eu"}), InventoryCluster("us-1", {"region": "us"})]
RINGS = [{"name": "canary", "clusters": ["canary-1"]},
         {"name": "eu", "cluster_selector": {"region": "eu"}, "bake": "10m"},
         {"name": "rest"}]


def view(rings=None, placement=None, status=None, wait=False):
    rings = RINGS if rings is None else rings
    git, kustomization = desired_objects("web", "team-a", "https://git.example.com/web.git", wait=wait,
                                         placement=placement or {"clusterSelector": {}}, rollout=rings)
    for obj in (git, kustomization):
        obj["metadata"]["generation"] = 3
    if status:
        kustomization["status"] = status
    return source_view(kustomization, git, CLUSTERS)


def parse(rings):
    return rollout.parse_rings({"rings": rings}, "spec.rollout", duration_seconds)


# -- planning ---------------------------------------------------------------------------------------------------


def test_rings_are_declared_on_the_kustomization_in_the_crd_shape():
    kustomization = desired_objects("web", "team-a", "https://g/web.git", rollout=RINGS)[1]
    assert kustomization["spec"]["rollout"] == {"rings": [
        {"name": "canary", "clusters": [{"name": "canary-1"}]},
        {"name": "eu", "clusterSelector": {"matchLabels": {"region": "eu"}}, "bake": "10m"},
        {"name": "rest"}]}
    assert "rollout" not in desired_objects("web", "team-a", "https://g/web.git")[1]["spec"]


def test_each_cluster_is_in_the_first_ring_that_selects_it_and_the_last_ring_takes_the_rest():
    source = view()
    assert source["errors"] == []
    assert [(r["name"], r["clusters"], r["bake_seconds"]) for r in source["rings"]] == [
        ("canary", ["canary-1"], 0), ("eu", ["eu-1", "eu-2"], 600), ("rest", ["us-1"], 0)]
    rings = dict((c, s["ring"]) for c, s in source["clusters"].items())
    assert rings == {"canary-1": 0, "eu-1": 1, "eu-2": 1, "us-1": 2}
    eu = source["clusters"]["eu-1"]
    # Rings always wait for health, whatever the source's wait says; the bake is the ring's.
    assert (eu["wait"], eu["bake"], eu["ring_name"]) == (True, 600, "eu")
    assert eu["render_digest"] == source["clusters"]["us-1"]["render_digest"]


def test_a_cluster_named_by_an_earlier_ring_is_not_taken_by_a_later_selector():
    source = view([{"name": "first", "clusters": ["eu-1"]}, {"name": "eu", "cluster_selector": {"region": "eu"}},
                   {"name": "rest"}])
    assert [r["clusters"] for r in source["rings"]] == [["eu-1"], ["eu-2"], ["canary-1", "us-1"]]


def test_a_ring_timeout_replaces_the_source_timeout():
    source = view([{"name": "all", "timeout": "45s"}])
    assert source["clusters"]["eu-1"]["wait_timeout"] == 45


def test_a_placed_cluster_in_no_ring_refuses_the_source():
    source = view([{"name": "canary", "clusters": ["canary-1"]}, {"name": "eu", "cluster_selector": {"region": "eu"}}])
    assert source["renders"] == [] and source["clusters"] == {} and source["rings"] == []
    assert "placed clusters us-1 are in no ring" in source["errors"][0]


@pytest.mark.parametrize("rings, words", [
    ([{"name": "rest"}, {"name": "canary", "clusters": ["c"]}], "ring rest has neither clusters nor clusterSelector"),
    ([{"name": "a", "clusters": ["c"]}, {"name": "a"}], "ring name a is used twice"),
    ([{"clusters": ["c"]}], "every ring needs a name"),
    ([{"name": "a", "bake": "ten minutes"}], "(a).bake: 'ten minutes' is not a duration"),
    ([{"name": "a", "clusters": [{}]}], "(a).clusters: every entry needs a name"),
])
def test_bad_rings_are_refused_naming_the_ring(rings, words):
    with pytest.raises(FederationError) as err:
        parse(rings)
    assert words in err.value.msg


def test_a_source_without_rings_has_no_ring_settings():
    git, kustomization = desired_objects("web", "team-a", "https://g/web.git", placement={"clusterSelector": {}})
    source = source_view(kustomization, git, CLUSTERS)
    assert source["rings"] == [] and "ring" not in source["clusters"]["eu-1"]


# -- waves ------------------------------------------------------------------------------------------------------


def plan_of(*sources):
    entries = []
    for key, clusters, rings in sources:
        entries.append(dict(key=key, ready=True, owner="gitops/" + key, target_namespace="team-a",
                            unplaced=["gone-1"], rings=rings,
                            clusters=dict((c, dict(namespace="team-a", render=0, revision="r", ring=ring))
                                          for c, ring in clusters.items())))
    return dict(sources=entries, secret_projects=["team-a"])


def test_ring_n_of_every_source_is_in_wave_n_and_plain_sources_in_wave_0():
    plan = plan_of(("team-a/web", {"canary-1": 0, "eu-1": 1, "us-1": 2}, [{}, {}, {}]),
                   ("team-a/api", {"eu-1": None, "us-1": None}, []))
    assert sync_run.waves(plan) == 3
    assert sync_run.cluster_waves(plan, "eu-1") == [0, 1]
    assert sync_run.cluster_waves(plan, "us-1") == [0, 2]
    assert sync_run.cluster_waves(plan, "elsewhere") == [0]
    assert [w["key"] for w in sync_run.cluster_work(plan, "eu-1", 0)] == ["team-a/api"]
    assert [w["key"] for w in sync_run.cluster_work(plan, "eu-1", 1)] == ["team-a/web"]
    assert sync_run.cluster_work(plan, "eu-1", 2) == []
    # Without a wave: everything, as before rings.
    assert [w["key"] for w in sync_run.cluster_work(plan, "eu-1")] == ["team-a/web", "team-a/api"]


def test_removals_go_with_the_clusters_first_wave_only():
    plan = plan_of(("team-a/web", {"eu-1": 1}, [{}, {}]))
    assert sync_run.cluster_waves(plan, "gone-1") == [0]
    assert [(w["key"], w["state"]) for w in sync_run.cluster_work(plan, "gone-1", 0)] == [("team-a/web", "absent")]
    assert sync_run.cluster_work(plan, "gone-1", 1) == []
    # eu-1's first wave is 1: nothing in wave 0.
    assert sync_run.cluster_work(plan, "eu-1", 0) == []


def test_without_rings_there_is_one_wave():
    assert sync_run.waves(plan_of(("team-a/api", {"eu-1": None}, []))) == 1
    assert sync_run.waves(dict(sources=[])) == 1


def test_a_failed_ring_halts_the_later_rings_of_its_source_only():
    reports = {"canary-1": dict(sources={}, secrets={}, rollout={
        "team-a/web": dict(ring="canary", state="RolledBack"), "team-a/api": dict(ring="canary", state="Healthy")}),
        "eu-1": dict(sources={}, secrets={}, rollout={"team-a/db": dict(ring="eu", state="Failed")})}
    assert sync_run.rollout_halts(reports, ["canary-1", "eu-1", "us-1"]) == {
        "team-a/web": "ring canary failed on canary-1", "team-a/db": "ring eu failed on eu-1"}


def test_reports_of_the_waves_of_one_cluster_merge():
    first = dict(sources={"a": 1}, secrets={"team-a": {}}, rollout={"a": {"state": "Healthy"}})
    second = dict(sources={"b": 2}, secrets={}, rollout={"b": {"state": "Halted"}}, lease_lost="x")
    merged = sync_run.merge_reports(first, second)
    assert merged == dict(sources={"a": 1, "b": 2}, secrets={"team-a": {}},
                          rollout={"a": {"state": "Healthy"}, "b": {"state": "Halted"}}, lease_lost="x")
    assert sync_run.merge_reports({}, dict(sources={}, secrets={})) == dict(sources={}, secrets={})


def test_halted_clusters_are_reported_as_not_synced():
    plan = dict(sources=[], secret_errors=[])
    reports = {"us-1": dict(sources={}, secrets={}, rollout={"team-a/web": dict(
        ring="rest", state="Halted", message="not started: ring canary failed on canary-1")})}
    assert sync_run.failures(plan, reports, ["us-1"]) == [
        "team-a/web on us-1: not synced (ring rest): not started: ring canary failed on canary-1"]


# -- holds ------------------------------------------------------------------------------------------------------


def test_a_rolled_back_revision_is_held_until_the_commit_or_the_source_changes_or_a_retry():
    status = {"held": {"revision": "main@sha1:bad", "generation": 3, "ring": "canary", "reason": "timed out"}}
    assert rollout.hold_of(status, "main@sha1:bad", 3)["ring"] == "canary"
    assert rollout.hold_of(status, "main@sha1:fixed", 3) is None
    assert rollout.hold_of(status, "main@sha1:bad", 4) is None
    assert rollout.hold_of(status, "main@sha1:bad", 3, retry=True) is None
    assert rollout.hold_of({}, "main@sha1:bad", 3) is None
    message = rollout.held_message(status["held"])
    assert "main@sha1:bad is not rolled out again: it failed in ring canary and was rolled back (timed out)" in message
    assert "gitops_rollout_retry=true" in message


def test_the_plan_holds_a_rolled_back_revision_and_renders_nothing_for_it():
    from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_steps import plan_rollouts

    source = view(status={"rollout": {"held": {"revision": "main@sha1:bad", "generation": 3, "ring": "canary"},
                                      "lastHealthy": {"eu-1": "main@sha1:good"}}})
    plan = dict(sources=[dict(key="team-a/web", ready=True, revision="main@sha1:bad", generation=3,
                              rings=source["rings"], clusters=dict(
                                  (c, dict(s, revision="main@sha1:bad")) for c, s in source["clusters"].items()))])
    renders, warnings = plan_rollouts(plan, [source], {}, "/nonexistent", "https://m", {}, False)
    entry = plan["sources"][0]
    assert (renders, entry["ready"]) == ([], False)
    assert entry["held"].startswith("revision main@sha1:bad is not rolled out again")
    assert sync_run.waves(plan) == 1


def test_the_plan_renders_each_clusters_last_healthy_revision_for_rollback(monkeypatch):
    from ansible_collections.gitops.federation.plugins.module_utils.federation import sync_steps

    jobs = []

    def render(job_list, credentials, bundle_dir, server, git_options, check_mode):
        jobs.extend(job_list)
        return [dict(item=j, changed=True, revision="sha1:" + j["render"]["ref"]["commit"],
                     bundle="/b/%s.yaml" % j["render"]["id"]) for j in job_list], []

    monkeypatch.setattr(sync_steps, "render_sources", render)
    good = "main@sha1:" + "a" * 40
    source = view(status={"rollout": {"lastHealthy": {"canary-1": good, "eu-1": good, "us-1": "main@sha1:new"}}})
    plan = dict(sources=[dict(key="team-a/web", namespace="team-a", name="web", ready=True, revision="main@sha1:new",
                              generation=3,
                              rings=source["rings"], clusters=dict(
                                  (c, dict(s, revision="main@sha1:new")) for c, s in source["clusters"].items()))])
    sync_steps.plan_rollouts(plan, [source], {}, "/cache", "https://m", {}, False)
    # One render of the good commit serves both clusters; us-1 already runs the new revision; eu-2 has none.
    assert [(j["render"]["id"], j["render"]["ref"]) for j in jobs] == [("rollback-0-" + "a" * 12, {"commit": "a" * 40})]
    clusters = plan["sources"][0]["clusters"]
    assert clusters["canary-1"]["rollback"] == dict(revision=good, bundle="/b/rollback-0-%s.yaml" % ("a" * 12))
    assert clusters["eu-1"]["rollback"] == clusters["canary-1"]["rollback"]
    assert "rollback" not in clusters["us-1"] and "rollback" not in clusters["eu-2"]


def test_commit_of_a_revision():
    assert rollout.commit_of("main@sha1:abc") == "abc"
    assert rollout.commit_of("sha1:abc") == "abc"
    assert rollout.commit_of(None) is None


# -- bake -------------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_bake_looks_until_each_bake_time_is_over_and_names_what_lost_health(monkeypatch):
    clock, looks = Clock(), []

    def look(client, planned, namespace, owner, checks=()):
        looks.append((planned, clock.now))
        if planned == "bad" and clock.now >= 110:
            return [dict(subject="Deployment.apps/team-a/web", status="InProgress", message="availableReplicas 1 of 2")]
        return [dict(subject="x", status="Current", message="ok")]

    monkeypatch.setattr(rollout, "look", look)
    baking = [dict(key="good", planned="good", namespace="n", owner="o", checks=(), seconds=12),
              dict(key="bad", planned="bad", namespace="n", owner="o", checks=(), seconds=30)]
    outcome = rollout.bake(None, baking, interval=5, clock=clock, sleep=clock.sleep)
    assert outcome["good"] is None
    assert outcome["bad"] == ("health lost after 10s of the 30s bake: Deployment.apps/team-a/web: "
                              "availableReplicas 1 of 2")
    # good: looked at 105, 110 and at its end (112); bad stopped at 110.
    assert [t for p, t in looks if p == "good"] == [105, 110, 112]
    assert [t for p, t in looks if p == "bad"] == [105, 110]


# -- status and events ------------------------------------------------------------------------------------------


def entry_of(source, revision="main@sha1:new"):
    return dict(key="team-a/web", revision=revision, generation=3, placed=[c.name for c in CLUSTERS],
                rings=source["rings"])


def test_a_healthy_rollout_records_each_rings_revision_and_start_and_health_events():
    source = view()
    reports = [dict(cluster=c, ring=r, state="Healthy", revision="main@sha1:new", healthy_revision="main@sha1:new",
                    changed=True, started="2026-01-01T00:00:0%dZ" % i, finished="2026-01-01T00:01:0%dZ" % i)
               for i, (c, r) in enumerate([("canary-1", "canary"), ("eu-1", "eu"), ("eu-2", "eu"), ("us-1", "rest")])]
    status, events = rollout.rollout_status({"held": {"revision": "main@sha1:old"}}, entry_of(source), reports,
                                            "2026-01-01T00:02:00Z")
    assert status["rings"] == [
        dict(name="canary", clusters=["canary-1"], state="Healthy", revision="main@sha1:new"),
        dict(name="eu", clusters=["eu-1", "eu-2"], state="Healthy", revision="main@sha1:new", bake="10m"),
        dict(name="rest", clusters=["us-1"], state="Healthy", revision="main@sha1:new")]
    assert status["lastHealthy"] == dict((c.name, "main@sha1:new") for c in CLUSTERS)
    assert "held" not in status, "a healthy rollout of another revision clears the hold"
    assert [(e[1], e[3]) for e in events] == [
        ("RingStarted", "2026-01-01T00:00:00Z"), ("RingHealthy", "2026-01-01T00:01:00Z"),
        ("RingStarted", "2026-01-01T00:00:01Z"), ("RingHealthy", "2026-01-01T00:01:02Z"),
        ("RingStarted", "2026-01-01T00:00:03Z"), ("RingHealthy", "2026-01-01T00:01:03Z")]
    assert events[3][2] == ("ring eu (2 of 3: eu-1, eu-2) healthy at revision main@sha1:new and stayed healthy for "
                            "its bake of 10m")


def test_a_no_op_sync_changes_no_ring_and_emits_no_event():
    source = view()
    reports = [dict(cluster="canary-1", ring="canary", state="Healthy", revision="main@sha1:new",
                    healthy_revision="main@sha1:new", changed=False)]
    previous, unused = rollout.rollout_status({}, entry_of(source), reports, "t1")
    status, events = rollout.rollout_status(previous, entry_of(source), reports, "t2")
    assert status == previous and events == []


def test_a_rolled_back_canary_halts_the_later_rings_and_holds_the_revision():
    source = view()
    previous = {"lastHealthy": dict((c.name, "main@sha1:old") for c in CLUSTERS)}
    reports = [dict(cluster="canary-1", ring="canary", state="RolledBack", revision="main@sha1:old",
                    healthy_revision="main@sha1:old", reason="health check failed: web: progress deadline exceeded",
                    message="rolled back to main@sha1:old: health check failed: web: progress deadline exceeded",
                    changed=True),
               dict(cluster="eu-1", ring="eu", state="Halted", message="not started: ring canary failed on canary-1")]
    status, events = rollout.rollout_status(previous, entry_of(source), reports, "2026-01-01T00:00:00Z")
    assert [(r["name"], r["state"], r.get("revision")) for r in status["rings"]] == [
        ("canary", "RolledBack", "main@sha1:old"), ("eu", "Halted", "main@sha1:old"),
        ("rest", "Pending", "main@sha1:old")]
    assert status["held"] == dict(revision="main@sha1:new", generation=3, ring="canary",
                                  reason="health check failed: web: progress deadline exceeded",
                                  since="2026-01-01T00:00:00Z")
    assert [e[1] for e in events] == ["RingStarted", "RingFailed", "RolledBack", "RingHalted"]
    assert events[2][2] == ("canary-1 rolled back from main@sha1:new to main@sha1:old: health check failed: web: "
                            "progress deadline exceeded")
    assert events[3][2] == "ring eu (2 of 3: eu-1, eu-2) not started: ring canary failed on canary-1"


def test_a_run_that_holds_the_revision_keeps_the_rollout_status_as_the_rollback_left_it():
    source = view()
    previous = {"lastHealthy": dict((c.name, "main@sha1:old") for c in CLUSTERS)}
    reports = [dict(cluster="canary-1", ring="canary", state="RolledBack", revision="main@sha1:old",
                    healthy_revision="main@sha1:old", reason="timed out", message="rolled back to main@sha1:old: timed out",
                    changed=True),
               dict(cluster="eu-1", ring="eu", state="Halted", message="not started: ring canary failed on canary-1")]
    after_rollback, unused = rollout.rollout_status(previous, entry_of(source), reports, "t1")
    held = dict(entry_of(source), held="held", held_status=after_rollback["held"])
    status, events = rollout.rollout_status(after_rollback, held, [], "t2")
    assert (status, events) == (after_rollback, [])

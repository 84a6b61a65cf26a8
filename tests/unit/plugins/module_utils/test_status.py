"""Unit tests of status: merging per-cluster results, condition transitions, and change detection."""

import os
import re

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.source_policy import SourcePolicy
from ansible_collections.gitops.federation.plugins.module_utils.federation.status import (
    apply_policy,
    build_source_status,
    build_status,
    counts_phrase,
    find_condition,
    normalize_results,
    status_changed,
    writes,
)

T0, T1, T2 = "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z"
REV1, REV2 = "main@sha1:1111111", "main@sha1:2222222"


def results(*items, revision=REV1):
    return normalize_results([dict(zip(("cluster", "status", "counts"), item)) for item in items], revision)


def sync(previous, items, placed, now, revision=REV1, **kwargs):
    return build_status(previous, results(*items, revision=revision), placed, now, generation=kwargs.pop("generation", 1),
                        revision=revision, **kwargs)


def condition(status, ctype):
    return find_condition(status["conditions"], ctype)


def test_first_sync_shapes_the_status_like_the_seed():
    status = sync({}, [("a-1", "Applied", {"created": 2, "unchanged": 5}), ("a-2", "Applied", {"created": 7})],
                  ["a-1", "a-2"], T0)
    assert status["observedGeneration"] == 1
    assert status["lastAppliedRevision"] == REV1
    assert status["clusters"] == [
        {"name": "a-1", "status": "Applied", "revision": REV1, "lastAppliedTime": T0, "counts": {"created": 2, "unchanged": 5}},
        {"name": "a-2", "status": "Applied", "revision": REV1, "lastAppliedTime": T0, "counts": {"created": 7}},
    ]
    propagation = condition(status, "Propagation")
    assert propagation == {"type": "Propagation", "status": "True", "reason": "Propagated", "observedGeneration": 1,
                           "message": "revision %s applied to 2 clusters: a-1, a-2" % REV1,
                           "lastTransitionTime": T0, "lastUpdateTime": T0}
    assert condition(status, "Ready")["status"] == "True"


def test_noop_rerun_is_not_a_change_and_keeps_counts_and_times():
    first = sync({}, [("a-1", "Applied", {"created": 3})], ["a-1"], T0)
    second = sync(first, [("a-1", "Applied", {"unchanged": 3})], ["a-1"], T1)
    assert not status_changed(first, second)
    assert second["clusters"] == first["clusters"]  # counts and lastAppliedTime describe the last real change
    assert condition(second, "Propagation")["lastTransitionTime"] == T0


def test_writes_or_new_revision_update_the_entry_and_time():
    first = sync({}, [("a-1", "Applied", {"created": 3})], ["a-1"], T0)
    configured = sync(first, [("a-1", "Applied", {"configured": 1, "unchanged": 2})], ["a-1"], T1)
    assert status_changed(first, configured)
    assert configured["clusters"][0]["lastAppliedTime"] == T1
    assert configured["clusters"][0]["counts"] == {"configured": 1, "unchanged": 2}
    moved = sync(configured, [("a-1", "Applied", {"unchanged": 3})], ["a-1"], T2, revision=REV2)
    assert moved["clusters"][0]["revision"] == REV2 and moved["clusters"][0]["lastAppliedTime"] == T2
    assert moved["lastAppliedRevision"] == REV2


def test_failed_cluster_turns_propagation_false_naming_it_and_keeps_last_applied_revision():
    first = sync({}, [("a-1", "Applied", {"created": 1}), ("a-2", "Applied", {"created": 1})], ["a-1", "a-2"], T0)
    failed = build_status(first, normalize_results([
        {"cluster": "a-1", "status": "Applied", "counts": {"configured": 1}},
        {"cluster": "a-2", "status": "Failed", "message": "the API server refused 1 object"}], REV2),
        ["a-1", "a-2"], T1, 2, REV2)
    propagation = condition(failed, "Propagation")
    assert propagation["status"] == "False"
    assert propagation["reason"] == "PropagationFailed"
    assert "failed on: a-2 (the API server refused 1 object)" in propagation["message"]
    assert propagation["lastTransitionTime"] == T1  # flipped
    assert condition(failed, "Ready")["status"] == "False"
    entry = [e for e in failed["clusters"] if e["name"] == "a-2"][0]
    assert entry == {"name": "a-2", "status": "Failed", "revision": REV1, "lastAppliedTime": T0,
                     "message": "the API server refused 1 object"}
    # recovery: flips back, with a new transition time
    recovered = build_status(failed, normalize_results([{"cluster": "a-2", "status": "Applied",
                                                         "counts": {"configured": 1}}], REV2), ["a-1", "a-2"], T2, 2, REV2)
    assert condition(recovered, "Propagation")["status"] == "True"
    assert condition(recovered, "Propagation")["lastTransitionTime"] == T2


def test_unchanged_condition_keeps_its_transition_time_but_message_changes_are_changes():
    first = sync({}, [("a-1", "Applied", {"created": 1})], ["a-1"], T0)
    second = sync(first, [("a-2", "Applied", {"created": 1})], ["a-1", "a-2"], T1)
    assert status_changed(first, second)
    assert condition(second, "Propagation")["lastTransitionTime"] == T0
    assert condition(second, "Propagation")["lastUpdateTime"] == T1


def test_unreachable_missing_behind_and_stale_clusters_are_named():
    previous = sync({}, [("a-1", "Applied", {"created": 1}), ("old", "Applied", {"created": 1})], ["a-1", "old"], T0)
    status = build_status(previous, normalize_results([{"cluster": "a-2", "status": "Unreachable",
                                                       "message": "connection refused"}], REV2),
                          ["a-1", "a-2", "a-3"], T1, 2, REV2)
    message = condition(status, "Propagation")["message"]
    assert "unreachable: a-2 (connection refused)" in message
    assert "not synced yet: a-3" in message
    assert "behind: a-1 (%s)" % REV1 in message
    assert "still applied to clusters outside the placement: old" in message
    assert status["lastAppliedRevision"] == REV1  # nothing applied REV2 yet


def test_deleted_result_removes_the_entry():
    previous = sync({}, [("a-1", "Applied", {"created": 1}), ("a-2", "Applied", {"created": 1})], ["a-1", "a-2"], T0)
    status = sync(previous, [("a-2", "Deleted", {"deleted": 1})], ["a-1"], T1)
    assert [e["name"] for e in status["clusters"]] == ["a-1"]
    assert condition(status, "Propagation")["status"] == "True"


def test_suspended_keeps_what_was_applied_and_says_suspended_in_both_conditions():
    previous = sync({}, [("a-1", "Applied", {"created": 1})], ["a-1"], T0)
    status = sync(previous, [("a-1", "Suspended", None)], ["a-1"], T1, suspended=True)
    entry = status["clusters"][0]
    assert entry["status"] == "Suspended" and entry["revision"] == REV1 and entry["lastAppliedTime"] == T0
    for ctype in ("Propagation", "Ready"):
        assert (condition(status, ctype)["status"], condition(status, ctype)["reason"]) == ("False", "Suspended")
        assert condition(status, ctype)["message"] == (
            "sync suspended: objects are left as they are (%s on a-1); resume to sync again" % REV1)
        assert condition(status, ctype)["lastTransitionTime"] == T1
    assert status_changed(previous, status)
    again = sync(status, [("a-1", "Suspended", None)], ["a-1"], T2, suspended=True)
    assert not status_changed(status, again)


def test_suspended_with_new_cluster_explains_itself():
    status = build_status({}, [], ["a-1"], T0, 1, REV1, suspended=True)
    assert condition(status, "Propagation")["reason"] == "Suspended"
    assert condition(status, "Propagation")["message"] == (
        "sync suspended: objects are left as they are; resume to sync again; not synced yet: a-1")


def test_unhealthy_cluster_keeps_propagation_but_not_ready():
    status = build_status({}, normalize_results([{"cluster": "a-1", "status": "Applied", "counts": {"created": 1},
                                                  "healthy": False, "message": "timed out waiting for Deployment web"}],
                                                REV1), ["a-1"], T0, 1, REV1)
    assert condition(status, "Propagation")["status"] == "True"
    ready = condition(status, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "HealthCheckFailed"
    assert "a-1 (timed out waiting for Deployment web)" in ready["message"]


def test_partial_recordings_merge():
    first = sync({}, [("a-1", "Applied", {"created": 1})], ["a-1", "a-2"], T0)
    assert condition(first, "Propagation")["status"] == "False"
    second = sync(first, [("a-2", "Applied", {"created": 1})], ["a-1", "a-2"], T1)
    assert [e["name"] for e in second["clusters"]] == ["a-1", "a-2"]
    assert condition(second, "Propagation")["status"] == "True"


def test_secret_status_has_no_revision():
    status = build_status({}, normalize_results([{"cluster": "a-1", "status": "Applied", "counts": {"created": 1}}]),
                          ["a-1"], T0, 3, None, track_revision=False, subject="Secret team-a/git")
    assert "lastAppliedRevision" not in status
    assert status["clusters"] == [{"name": "a-1", "status": "Applied", "lastAppliedTime": T0, "counts": {"created": 1}}]
    assert condition(status, "Propagation")["message"] == "Secret team-a/git applied to 1 cluster: a-1"


def test_foreign_conditions_are_kept():
    previous = {"conditions": [{"type": "Reconciling", "status": "True"}]}
    status = sync(previous, [("a-1", "Applied", {"created": 1})], ["a-1"], T0)
    assert find_condition(status["conditions"], "Reconciling") == {"type": "Reconciling", "status": "True"}


def test_observed_generation_change_is_a_change():
    first = sync({}, [("a-1", "Applied", {"created": 1})], ["a-1"], T0, generation=1)
    second = sync(first, [("a-1", "Applied", {"unchanged": 1})], ["a-1"], T1, generation=2)
    assert status_changed(first, second)


def test_normalize_results_validates():
    with pytest.raises(FederationError, match=r"results\[0\] \(cluster a\): status 'Done' is not one of"):
        normalize_results([{"cluster": "a", "status": "Done"}])
    with pytest.raises(FederationError, match="cluster a has two results"):
        normalize_results([{"cluster": "a", "status": "Applied"}] * 2)
    with pytest.raises(FederationError, match="counts.created must be a number"):
        normalize_results([{"cluster": "a", "status": "Applied", "counts": {"created": "many"}}])
    counts = {"created": 1, "unchanged": 0, "writes": 3}
    assert normalize_results([{"cluster": "a", "status": "Applied", "counts": counts}])[0]["counts"] == {"created": 1}


def test_source_status_tracks_the_artifact():
    status = build_source_status({}, T0, 1, REV1)
    assert status["artifact"] == {"revision": REV1, "lastUpdateTime": T0}
    assert find_condition(status["conditions"], "Ready")["status"] == "True"
    same = build_source_status(status, T1, 1, REV1)
    assert not status_changed(status, same) and same["artifact"]["lastUpdateTime"] == T0
    failed = build_source_status(same, T2, 1, None, error="authentication failed")
    assert failed["artifact"]["revision"] == REV1
    ready = find_condition(failed["conditions"], "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "FetchFailed", "authentication failed")


def test_counts_phrase():
    assert counts_phrase({"created": 2, "configured": 1, "unchanged": 5}) == "created 2, configured 1, unchanged 5"
    assert counts_phrase({"unchanged": 0}) == "no objects"


def test_a_recreated_object_is_counted_and_is_a_write():
    counts = {"recreated": 1, "unchanged": 4}
    assert normalize_results([{"cluster": "a", "status": "Applied", "counts": counts}])[0]["counts"] == counts
    assert counts_phrase(counts) == "recreated 1, unchanged 4"
    assert writes(counts) == 1


def test_a_resumed_source_synced_again_is_propagated_and_ready():
    applied = sync({}, [("a-1", "Applied", {"created": 1})], ["a-1"], T0)
    suspended = sync(applied, [("a-1", "Suspended", None)], ["a-1"], T1, suspended=True)
    resumed = sync(suspended, [("a-1", "Applied", {"unchanged": 1})], ["a-1"], T2)
    assert resumed["clusters"][0]["status"] == "Applied" and resumed["clusters"][0]["lastAppliedTime"] == T0
    for ctype, reason in (("Propagation", "Propagated"), ("Ready", "Succeeded")):
        assert (condition(resumed, ctype)["status"], condition(resumed, ctype)["reason"]) == ("True", reason)


REFUSED = ("the API server refused 25 objects, nothing was applied: " +
           "; ".join("ConfigMap/team-a/settings-%02d: data[bad key %02d]: Invalid value: a valid config key must "
                     "consist of alphanumeric characters, '-', '_' or '.'" % (i, i) for i in range(25)))


def test_a_long_refusal_is_summarised_in_entries_and_only_named_in_conditions():
    given = normalize_results([{"cluster": c, "status": "Failed", "counts": {"failed": 25}, "message": REFUSED}
                               for c in ("a-1", "a-2")], REV1)
    status = build_status({}, given, ["a-1", "a-2"], T0, 1, REV1)
    for entry in status["clusters"]:
        assert len(entry["message"]) <= 300
        assert entry["message"].startswith("the API server refused 25 objects, nothing was applied: "
                                           "ConfigMap/team-a/settings-00: ")
        assert re.search(r"; and 2[0-4] more \(see Events\)$", entry["message"]), entry["message"]
    for ctype in ("Propagation", "Ready"):
        assert condition(status, ctype)["reason"] == "PropagationFailed"
        assert condition(status, ctype)["message"] == (
            "failed on: a-1, a-2 (the API server refused 25 objects, nothing was applied)")
    assert len(repr(status)) < 2000


def test_many_clusters_are_named_up_to_a_few():
    names = ["c-%02d" % i for i in range(40)]
    status = build_status({}, [], names, T0, 1, REV1)
    message = condition(status, "Propagation")["message"]
    assert message == "not synced yet: c-00, c-01, c-02, c-03, c-04 and 35 more"


def test_every_reason_the_code_sets_is_documented():
    from ansible_collections.gitops.federation.plugins.module_utils.federation import status
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    with open(os.path.join(root, "docs", "resources.md")) as handle:
        docs = handle.read()
    section = docs[docs.index("## Status"):docs.index("## Events")]
    reasons = [status.PROPAGATED, status.PROPAGATION_FAILED, status.PROGRESSING, status.SUCCEEDED,
               status.HEALTH_CHECK_FAILED, status.SUSPENDED, "SourceFailed", "FetchFailed"]
    assert [reason for reason in reasons if "`%s`" % reason not in section] == []


def test_status_shows_the_scope_and_a_claim_the_sync_ignored():
    platform = SourcePolicy.from_inventory({"name": "addons", "service_account": "deployer", "platform": {
        "cluster_scoped_kinds": ["ClusterRole"], "namespaces": "all"}}, "ops").to_plan()
    status = apply_policy(build_status({}, results(("c1", "Applied")), ["c1"], T0), {}, platform, None, T0)
    assert status["scope"] == "platform"
    assert status["platform"] == {"clusterScopedKinds": ["ClusterRole"], "namespaces": ["*"], "pruneCRDs": False,
                                  "serviceAccount": "ops/deployer"}
    assert find_condition(status["conditions"], "Policy") is None  # nothing to say
    narrowed = apply_policy(build_status(status, results(("c1", "Applied")), ["c1"], T1), status,
                            SourcePolicy().to_plan(), "FederatedKustomization team/app claims more", T1)
    assert narrowed["scope"] == "tenant" and "platform" not in narrowed
    policy = find_condition(narrowed["conditions"], "Policy")
    assert (policy["status"], policy["reason"]) == ("False", "ClaimIgnored") and "claims more" in policy["message"]
    fixed = apply_policy(build_status(narrowed, results(("c1", "Applied")), ["c1"], T2), narrowed,
                         SourcePolicy().to_plan(), None, T2)
    assert find_condition(fixed["conditions"], "Policy")["status"] == "True"

"""Unit tests of events: which results leave an Event, and what its message says."""

from ansible_collections.gitops.federation.plugins.module_utils.federation.events import (
    event_body,
    event_message,
    event_name,
    events_for_results,
)
from ansible_collections.gitops.federation.plugins.module_utils.federation.status import normalize_results

REV = "main@sha1:abc1234"


def test_applied_message_names_revision_cluster_and_counts():
    assert event_message("Applied", "attached-1", {"created": 2, "configured": 1, "unchanged": 5}, REV) == (
        "Applied revision main@sha1:abc1234 to cluster attached-1: created 2, configured 1, unchanged 5")


def test_other_messages():
    assert event_message("Pruned", "attached-1", {"pruned": 2}, REV) == (
        "Pruned 2 objects from cluster attached-1 at revision main@sha1:abc1234")
    assert event_message("Deleted", "attached-2", {"deleted": 3}, REV) == (
        "Deleted revision main@sha1:abc1234 from cluster attached-2: deleted 3")
    assert event_message("Suspended", "attached-1", None, REV) == (
        "Sync of revision main@sha1:abc1234 to cluster attached-1 suspended; objects are left as they are")
    assert event_message("Failed", "attached-2", {}, REV, "connection refused") == (
        "Failed to apply revision main@sha1:abc1234 to cluster attached-2: connection refused")
    assert event_message("Failed", "attached-2", {"created": 1, "failed": 1}, REV, "quota exceeded") == (
        "Failed to apply revision main@sha1:abc1234 to cluster attached-2 (created 1, failed 1): quota exceeded")
    assert event_message("Unreachable", "attached-3", {}, REV, "timeout") == (
        "Cluster attached-3 unreachable; revision main@sha1:abc1234 not applied: timeout")
    assert event_message("Applied", "attached-1", {"created": 1}, None, None, "FederatedSecret", "git") == (
        "Applied Secret git to cluster attached-1: created 1")
    assert len(event_message("Failed", "c", {}, REV, "x" * 5000)) < 5200  # the whole message: the status has a summary
    assert len(event_message("Failed", "c", {}, REV, "x" * 50000)) == 8192


def results(items, revision=REV):
    return normalize_results(items, revision)


def test_events_only_for_results_that_did_something():
    previous = [{"name": "a-1", "status": "Applied", "revision": REV}, {"name": "a-3", "status": "Suspended",
                                                                        "revision": REV}]
    events = events_for_results(results([
        {"cluster": "a-1", "status": "Applied", "counts": {"unchanged": 4}},          # no-op: nothing
        {"cluster": "a-2", "status": "Applied", "counts": {"unchanged": 4}},          # new cluster: Applied
        {"cluster": "a-3", "status": "Suspended"},                                    # still suspended: nothing
        {"cluster": "a-4", "status": "Deleted"},                                      # never there, nothing deleted
    ]), previous)
    assert events == [("Normal", "Applied", "Applied revision %s to cluster a-2: unchanged 4" % REV)]


def test_prune_failure_suspend_and_delete_events():
    previous = [{"name": "a-1", "status": "Applied", "revision": "main@sha1:old"},
                {"name": "a-3", "status": "Applied", "revision": "main@sha1:old"},
                {"name": "a-4", "status": "Applied", "revision": "main@sha1:old"}]
    events = events_for_results(results([
        {"cluster": "a-1", "status": "Applied", "counts": {"configured": 1, "pruned": 2, "unchanged": 3}},
        {"cluster": "a-2", "status": "Failed", "message": "forbidden"},
        {"cluster": "a-3", "status": "Suspended"},
        {"cluster": "a-4", "status": "Deleted", "counts": {"deleted": 6}},
        {"cluster": "a-5", "status": "Unreachable", "message": "no route to host"},
    ]), previous)
    assert events == [
        ("Normal", "Applied", "Applied revision %s to cluster a-1: configured 1, unchanged 3, pruned 2" % REV),
        ("Normal", "Pruned", "Pruned 2 objects from cluster a-1 at revision %s" % REV),
        ("Warning", "Failed", "Failed to apply revision %s to cluster a-2: forbidden" % REV),
        ("Normal", "Suspended", "Sync of revision main@sha1:old to cluster a-3 suspended; objects are left as they are"),
        ("Normal", "Deleted", "Deleted revision main@sha1:old from cluster a-4: deleted 6"),
        ("Warning", "Failed", "Cluster a-5 unreachable; revision %s not applied: no route to host" % REV),
    ]


def test_unhealthy_apply_is_a_warning():
    events = events_for_results(results([{"cluster": "a-1", "status": "Applied", "counts": {"created": 1},
                                          "healthy": False, "message": "Deployment web not ready"}]), [])
    assert events == [("Warning", "Applied", "Applied revision %s to cluster a-1: created 1 (not healthy: "
                                             "Deployment web not ready)" % REV)]


def test_recovery_after_failure_is_reported():
    events = events_for_results(results([{"cluster": "a-1", "status": "Applied", "counts": {"unchanged": 2}}]),
                                [{"name": "a-1", "status": "Failed", "revision": REV}])
    assert events[0][1] == "Applied"


INVOLVED = {"apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedKustomization",
            "metadata": {"name": "podinfo", "namespace": "team-a", "uid": "1234", "resourceVersion": "9"}}


def test_event_body_refers_to_the_object_with_uid():
    body = event_body(INVOLVED, "Normal", "Applied", "Applied revision x to cluster a: created 1", "2024-05-01T10:00:00Z")
    assert body["involvedObject"] == {"apiVersion": "types.kubefed.io/v1beta1", "kind": "FederatedKustomization",
                                      "name": "podinfo", "namespace": "team-a", "uid": "1234", "resourceVersion": "9"}
    assert body["metadata"]["namespace"] == "team-a" and body["metadata"]["name"].startswith("podinfo.")
    assert body["reportingComponent"] == "gitops-federation" and body["source"] == {"component": "gitops-federation"}
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2024-05-01T10:00:00Z" and body["count"] == 1


def test_event_name_is_stable_per_message():
    assert event_name(INVOLVED, "Failed", "m") == event_name(INVOLVED, "Failed", "m")
    assert event_name(INVOLVED, "Failed", "m") != event_name(INVOLVED, "Failed", "n")
    other = dict(INVOLVED, metadata=dict(INVOLVED["metadata"], uid="5678"))
    assert event_name(INVOLVED, "Failed", "m") != event_name(other, "Failed", "m")


def test_the_same_failure_on_several_clusters_is_one_event_with_the_whole_message():
    long_message = "the API server refused 25 objects, nothing was applied: " + "; ".join(
        "ConfigMap/ns/cm-%02d: bad" % i for i in range(25))
    reordered = "the API server refused 25 objects, nothing was applied: " + "; ".join(
        "ConfigMap/ns/cm-%02d: bad" % i for i in reversed(range(25)))
    events = events_for_results(results([
        {"cluster": "a-1", "status": "Failed", "counts": {"failed": 25}, "message": long_message},
        {"cluster": "a-2", "status": "Failed", "counts": {"failed": 25}, "message": reordered},
        {"cluster": "a-3", "status": "Failed", "message": "connection refused"},
    ]), [])
    assert events == [
        ("Warning", "Failed", "Failed to apply revision %s to clusters a-1, a-2 (failed 25): %s" % (REV, long_message)),
        ("Warning", "Failed", "Failed to apply revision %s to cluster a-3: connection refused" % REV),
    ]

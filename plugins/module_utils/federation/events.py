# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit trail: core/v1 Events on federated objects.

Every sync result that did something leaves an Event on the FederatedKustomization (or
FederatedSecret) naming the revision, the cluster and the counts, so ``kubectl get events -n <project>``
answers both "what revision reached which cluster, when" and "what failed where".

Reasons: ``Applied`` (objects written, a new revision, or a recovery), ``Pruned`` (objects that left
the source were deleted), ``Failed`` (apply failed or the cluster was unreachable; Warning),
``Suspended`` (sync to a cluster suspended), ``Deleted`` (everything removed from a cluster).
A no-op sync emits nothing. A repeated identical event is counted (``count``, ``lastTimestamp``) on
one Event object instead of creating another, like client-go's event correlator.

Messages are built from revisions, cluster names, counts and the caller's result messages, never
from object content, so no secret value can reach an Event.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.federation.status import (
    APPLIED, DELETED, FAILED, SUSPENDED, UNREACHABLE, counts_phrase, shorten, writes)

COMPONENT = "gitops-federation"
NORMAL = "Normal"
WARNING = "Warning"
# The Event holds the whole message of a failure (the status only a summary), within reason.
MAX_MESSAGE = 8192


def _what(kind, name, revision):
    """How a message names what was synced: the revision of a source, the Secret of a FederatedSecret."""
    if kind == "FederatedSecret":
        return "Secret %s" % name
    return "revision %s" % (revision or "(unknown)")


def event_message(reason, cluster, counts=None, revision=None, message=None, kind="FederatedKustomization",
                  name=None):
    """The text of one event, e.g. 'Applied revision main@sha1:abc to cluster attached-1: created 2, unchanged 5'.

    cluster may be a list of names (one Failed event for several clusters): 'to clusters a, b'.
    """
    what = _what(kind, name, revision)
    names = list(cluster) if isinstance(cluster, (list, tuple)) else [cluster]
    target = "cluster%s %s" % ("s" if len(names) > 1 else "", ", ".join(names))
    counts = counts or {}
    if reason == "Applied":
        text = "Applied %s to %s: %s" % (what, target, counts_phrase(counts))
    elif reason == "Pruned":
        pruned = counts.get("pruned", 0)
        text = "Pruned %d object%s from %s at %s" % (pruned, "" if pruned == 1 else "s", target, what)
    elif reason == "Deleted":
        text = "Deleted %s from %s: %s" % (what, target, counts_phrase(counts))
    elif reason == "Suspended":
        text = "Sync of %s to %s suspended; objects are left as they are" % (what, target)
    elif reason == "Unreachable":
        text = "C%s unreachable; %s not applied" % (target[1:], what)
    else:
        text = "Failed to apply %s to %s" % (what, target)
        if writes(counts) or counts.get("failed"):
            text += " (%s)" % counts_phrase(counts)
    if message:
        text += ": %s" % message if reason in ("Failed", "Unreachable") else " (%s)" % message
    return shorten(text, MAX_MESSAGE)


def events_for_results(results, previous_entries, kind="FederatedKustomization", name=None):
    """The (type, reason, message) events a sync's results call for, given the entries before it.

    Nothing is emitted for a no-op Applied result (same revision, no write, already Applied), nor for
    a Deleted result on a cluster the object was never recorded on that deleted nothing. Failures with
    the same message and counts on several clusters make one Event naming them all, so a long message
    (a refused bundle lists every object) is stored once.
    """
    return _merge_failures(_events_per_result(results, previous_entries, kind, name), results, kind, name)


def _same_failure(result):
    """What makes two failures the same: counts, the message's head and its problems in any order.

    (The engine assesses objects concurrently, so two clusters refusing the same bundle list the same
    problems in different orders.)
    """
    head, unused, rest = result["message"].partition(": ")
    return counts_phrase(result.get("counts")), head, tuple(sorted(rest.split("; ")))


def _merge_failures(events, results, kind, name):
    """One Failed event per distinct failure instead of one per cluster."""
    groups = {}
    for result in results:
        if result["status"] == FAILED and result.get("message"):
            groups.setdefault(_same_failure(result), []).append(result)
    merged, done = [], set()
    for event, result in events:
        if result is None or result["status"] != FAILED or not result.get("message"):
            merged.append(event)
            continue
        key = _same_failure(result)
        if key in done:
            continue
        done.add(key)
        clusters = [r["cluster"] for r in groups[key]]
        if len(clusters) == 1:
            merged.append(event)
        else:
            merged.append((event[0], event[1], event_message(
                "Failed", clusters, result.get("counts"), result.get("revision"), result["message"], kind, name)))
    return merged


def _events_per_result(results, previous_entries, kind, name):
    """[((type, reason, message), result)], one or two per result that did something."""
    previous = dict((e.get("name"), e) for e in previous_entries or [])
    events = []
    track_revision = kind != "FederatedSecret"
    for result in results:
        cluster, state, counts = result["cluster"], result["status"], result.get("counts") or {}
        before = previous.get(cluster)
        revision = result.get("revision")
        if state == APPLIED:
            moved = track_revision and (before or {}).get("revision") != revision
            if writes(counts) or before is None or before.get("status") != APPLIED or moved:
                message = result.get("message")
                if result.get("healthy") is False:
                    message = "not healthy%s" % (": " + message if message else "")
                events.append(((WARNING if result.get("healthy") is False else NORMAL, "Applied",
                               event_message("Applied", cluster, counts, revision, message, kind, name)), result))
            if counts.get("pruned"):
                events.append(((NORMAL, "Pruned", event_message("Pruned", cluster, counts, revision, None, kind, name)),
                               result))
        elif state == FAILED:
            message = event_message("Failed", cluster, counts, revision, result.get("message"), kind, name)
            events.append(((WARNING, "Failed", message), result))
        elif state == UNREACHABLE:
            message = event_message("Unreachable", cluster, counts, revision, result.get("message"), kind, name)
            events.append(((WARNING, "Failed", message), result))
        elif state == SUSPENDED:
            if before is None or before.get("status") != SUSPENDED:
                events.append(((NORMAL, "Suspended", event_message(
                    "Suspended", cluster, counts, (before or {}).get("revision") or revision, None, kind, name)),
                    result))
        elif state == DELETED:
            if before is not None or writes(counts):
                events.append(((NORMAL, "Deleted", event_message(
                    "Deleted", cluster, counts, (before or {}).get("revision") or revision, None, kind, name)),
                    result))
    return events


def event_name(involved, reason, message):
    """A stable name per (object, reason, message), so a repeated event is counted, not duplicated."""
    metadata = involved.get("metadata") or {}
    digest = hashlib.sha256("\n".join([metadata.get("uid") or "", involved.get("kind") or "", reason,
                                       message]).encode("utf-8")).hexdigest()[:16]
    return "%s.%s" % (metadata.get("name", "object")[:200], digest)


def event_body(involved, event_type, reason, message, now, action="Sync"):
    metadata = involved.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(involved, reason, message), "namespace": metadata.get("namespace"),
                     "labels": {"app.kubernetes.io/managed-by": "gitops.federation"}},
        "involvedObject": {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                           "name": metadata.get("name"), "namespace": metadata.get("namespace"),
                           "uid": metadata.get("uid"), "resourceVersion": metadata.get("resourceVersion")},
        "reason": reason,
        "message": message,
        "type": event_type,
        "action": action,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class EventRecorder:
    """Writes events about one object; repeated events bump count and lastTimestamp."""

    def __init__(self, client, involved, check_mode=False):
        self.client = client
        self.involved = involved
        self.check_mode = check_mode
        self.recorded = []
        self._resource = client.discovery().find("v1", "Event")

    def emit(self, event_type, reason, message, now):
        body = event_body(self.involved, event_type, reason, message, now)
        self.recorded.append(dict(type=event_type, reason=reason, message=message))
        if self.check_mode:
            return
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        existing = self.client.get(self._resource, name, namespace)
        if existing is not None:
            patch = {"count": int(existing.get("count") or 1) + 1, "lastTimestamp": now}
            self.client.request("PATCH", self._resource.path(namespace, name), body=patch,
                                content_type="application/merge-patch+json")
            return
        try:
            self.client.request("POST", self._resource.path(namespace), body=body)
        except ApiError as err:
            if not err.conflict:  # created meanwhile by a concurrent run: counting it once is fine
                raise

# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recording one sync on the management cluster: status of the federated object, then its Events.

Step 4 of the data flow. The status is computed by ``status.build_status`` from the live object and
written only when it changed in more than its timestamps; Events are emitted for results that did
something (``events.events_for_results``). A conflict (someone wrote the object meanwhile) re-reads
and recomputes, so concurrent recordings of different clusters merge.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.events import WARNING, EventRecorder, events_for_results
from ansible_collections.gitops.federation.plugins.module_utils.federation.store import (
    FEDERATED_GIT_REPOSITORY, FEDERATED_KUSTOMIZATION, FEDERATED_SECRET, FederationStore)
from ansible_collections.gitops.federation.plugins.module_utils.federation.status import (
    DELETED, READY, SUSPENDED, apply_policy, build_source_status, build_status, normalize_results, set_condition,
    status_changed, utc_now)

RECORDABLE_KINDS = (FEDERATED_KUSTOMIZATION, FEDERATED_SECRET)
CONFLICT_RETRIES = 5


class SyncRecord:
    """The outcome of recording: what the status became and which events were emitted."""

    def __init__(self):
        self.status_changed = False
        self.status = None
        self.previous_status = None
        self.events = []
        self.source_status_changed = False
        self.source_status = None

    @property
    def changed(self):
        return self.status_changed or self.source_status_changed or bool(self.events)


def record_sync(client, kind, namespace, name, results, placed=None, revision=None, suspended=False,
                observed_generation=None, source_error=None, check_mode=False, now=None, cause=None, policy=None,
                policy_note=None, amend_status=None, ended_conditions=()):
    """Write one sync's per-cluster results into the object's status and emit its Events.

    ``policy`` (a source's policy as the sync plan carries it) and ``policy_note`` (why the federated object's
    claimed policy was ignored) are shown in the status of a FederatedKustomization (status.apply_policy); the
    note is also a Warning event. amend_status(previous status, new status, now), when given, completes the new
    status in place (the rollout rings' part) and returns more Events to emit, as (type, reason, message, time).
    ``ended_conditions`` are condition types of other steps that no longer hold; they leave the status in this
    write (status.build_status).
    """
    if kind not in RECORDABLE_KINDS:
        raise FederationError("kind must be one of %s, got %s" % (", ".join(RECORDABLE_KINDS), kind))
    if source_error and kind != FEDERATED_KUSTOMIZATION:
        raise FederationError("source_error applies to a FederatedKustomization (its FederatedGitRepository), not "
                              "to a %s" % kind)
    store = FederationStore(client)
    now = now or utc_now()
    track_revision = kind == FEDERATED_KUSTOMIZATION
    given = normalize_results(results, revision if track_revision else None)
    subject = "revision" if track_revision else "Secret %s" % name
    record = SyncRecord()
    for attempt in range(CONFLICT_RETRIES):
        obj = store.get(kind, namespace, name)
        if obj is None:
            raise FederationError("%s %s/%s does not exist on the management cluster; nothing to record the sync on"
                                  % (kind, namespace, name))
        generation = observed_generation or (obj.get("metadata") or {}).get("generation")
        previous = obj.get("status") or {}
        effective_placed = placed if placed is not None else default_placed(given, previous)
        normalized = given
        if suspended and not normalized:
            normalized = normalize_results([{"cluster": c, "status": SUSPENDED} for c in effective_placed],
                                           revision if track_revision else None)
        status = build_status(previous, normalized, effective_placed, now, generation,
                              revision if track_revision else None, suspended, track_revision, subject,
                              ended=ended_conditions)
        if source_error:
            ready = set_condition(previous.get("conditions"), READY, "False", "SourceFailed",
                                  "source failed: %s" % source_error, now, generation)
            status["conditions"] = [ready if c["type"] == READY else c for c in status["conditions"]]
        if policy is not None and kind == FEDERATED_KUSTOMIZATION:
            apply_policy(status, previous, policy, policy_note, now, generation)
        elif previous.get("scope"):
            status["scope"] = previous["scope"]
            if previous.get("platform"):
                status["platform"] = previous["platform"]
        more_events = amend_status(previous, status, now) if amend_status else []
        record.previous_status, record.status = previous, status
        record.status_changed = status_changed(previous, status)
        if not record.status_changed or check_mode:
            break
        try:
            obj = store.write_status(obj, status)
            break
        except ApiError as err:
            if not err.conflict or attempt == CONFLICT_RETRIES - 1:
                raise FederationError("%s %s/%s: status write failed: %s" % (kind, namespace, name, err.msg),
                                      status=err.status)
    recorder = EventRecorder(client, obj, check_mode)
    for event_type, reason, message in events_for_results(normalized, (record.previous_status or {}).get("clusters"),
                                                          kind, name):
        if cause and reason in ("Applied", "Failed"):
            message = "%s [%s]" % (message, cause)
        recorder.emit(event_type, reason, message, now)
    if policy_note and kind == FEDERATED_KUSTOMIZATION:
        recorder.emit(WARNING, "PolicyClaimIgnored", policy_note[:1024], now)
    for event_type, reason, message, when in more_events:
        recorder.emit(event_type, reason, message[:1024], when or now)
    if track_revision:
        _record_source(store, client, obj, namespace, revision, source_error, check_mode, now, record, recorder)
    record.events = recorder.recorded
    return record


def default_placed(results, previous_status):
    """Without an explicit placement: the clusters of the results (not Deleted) and those already listed."""
    mentioned = set(r["cluster"] for r in results)
    names = [r["cluster"] for r in results if r["status"] != DELETED]
    names += [e["name"] for e in previous_status.get("clusters") or [] if e.get("name") not in mentioned]
    return sorted(set(names))


def _record_source(store, client, kustomization, namespace, revision, source_error, check_mode, now, record,
                   kustomization_recorder):
    """The artifact and Ready condition of the FederatedGitRepository the kustomization syncs from."""
    template_spec = ((kustomization.get("spec") or {}).get("template") or {}).get("spec") or {}
    source_name = (template_spec.get("sourceRef") or {}).get("name") or kustomization["metadata"]["name"]
    if not revision and not source_error:
        return
    for attempt in range(CONFLICT_RETRIES):
        source = store.get(FEDERATED_GIT_REPOSITORY, namespace, source_name)
        if source is None:
            return
        generation = (source.get("metadata") or {}).get("generation")
        previous = source.get("status") or {}
        status = build_source_status(previous, now, generation, revision, source_error)
        record.source_status = status
        record.source_status_changed = status_changed(previous, status)
        if not record.source_status_changed or check_mode:
            break
        try:
            source = store.write_status(source, status)
            break
        except ApiError as err:
            if not err.conflict or attempt == CONFLICT_RETRIES - 1:
                raise FederationError("%s %s/%s: status write failed: %s" % (FEDERATED_GIT_REPOSITORY, namespace,
                                                                             source_name, err.msg), status=err.status)
    if source_error:
        recorder = EventRecorder(client, source, check_mode)
        recorder.emit(WARNING, "Failed", ("Failed to fetch or render %s: %s" % (revision or "the source", source_error))
                      [:1024], now)
        kustomization_recorder.recorded.extend(dict(r, object="%s/%s" % (FEDERATED_GIT_REPOSITORY, source_name))
                                               for r in recorder.recorded)


def record_condition(client, kind, namespace, name, ctype, state, reason, message, events=(), check_mode=False,
                     now=None):
    """Set one condition of a federated object's status (the others are kept) and emit its Events.

    For conditions other steps than the sync own (``Drifted`` of the drift report, ``SyncWindow``); written only
    when it changed in more than its timestamps. ``events`` are (type, reason, message).
    """
    store = FederationStore(client)
    now = now or utc_now()
    record = SyncRecord()
    obj = None
    for attempt in range(CONFLICT_RETRIES):
        obj = store.get(kind, namespace, name)
        if obj is None:
            raise FederationError("%s %s/%s does not exist on the management cluster; nothing to record the %s "
                                  "condition on" % (kind, namespace, name, ctype))
        previous = obj.get("status") or {}
        generation = (obj.get("metadata") or {}).get("generation")
        condition = set_condition(previous.get("conditions"), ctype, state, reason, message, now, generation)
        status = dict(previous)
        status["conditions"] = [c for c in previous.get("conditions") or [] if c.get("type") != ctype] + [condition]
        record.previous_status, record.status = previous, status
        record.status_changed = status_changed(previous, status)
        if not record.status_changed or check_mode:
            break
        try:
            obj = store.write_status(obj, status)
            break
        except ApiError as err:
            if not err.conflict or attempt == CONFLICT_RETRIES - 1:
                raise FederationError("%s %s/%s: status write failed: %s" % (kind, namespace, name, err.msg),
                                      status=err.status)
    recorder = EventRecorder(client, obj, check_mode)
    for event_type, reason_, text in events:
        recorder.emit(event_type, reason_, text[:1024], now)
    record.events = recorder.recorded
    return record

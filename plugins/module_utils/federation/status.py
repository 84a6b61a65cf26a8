# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Status of federated objects, computed from one sync's per-cluster results.

Pure functions: the caller reads the live object, passes its status here, and writes the result
through the status subresource only when ``status_changed`` says so.

``status.clusters`` (one entry per cluster the object was applied to)
  A result merges into its cluster's entry:

  - ``Applied`` with writes (created/configured/pruned/deleted > 0), a new revision, or after another
    status: the entry takes the result (``status``, ``revision``, ``counts``, ``message``, ``healthy``)
    and ``lastAppliedTime`` becomes now.
  - ``Applied`` with no write, at the entry's revision, when the entry already says ``Applied`` (a
    no-op sync): the entry stays as it is (only ``healthy`` follows the result). So ``revision``,
    ``lastAppliedTime`` and ``counts`` describe the last sync that changed something on that
    cluster, and a rerun with nothing to do changes nothing.
  - ``Failed`` / ``Unreachable``: ``status``, ``message`` and ``counts`` from the result; ``revision``
    and ``lastAppliedTime`` keep what was last applied there.
  - ``Suspended``: ``status`` and ``message`` change, the rest is kept.
  - ``Deleted``: the entry is removed (the Deleted event keeps the record).

  Entries of clusters without a result in this sync are left as they are (partial recordings, for
  example one per rollout batch, merge).

Conditions (``type``, ``status``, ``reason``, ``message``, ``lastTransitionTime``, ``lastUpdateTime``,
``observedGeneration``)
  ``Propagation`` is True (``Propagated``) when every placed cluster has an entry that is Applied (or
  Suspended by a per-cluster override) at the revision being synced, and no cluster outside the
  placement still holds objects; otherwise False: ``PropagationFailed`` (a cluster failed or was
  unreachable) or ``Progressing`` (not synced yet, behind, removal pending). A suspended source is False
  with ``Suspended`` whatever its clusters hold: new revisions do not propagate until it is resumed.
  ``Ready`` is True (``Succeeded``) when Propagation is True and no placed cluster reported
  ``healthy: false`` (else ``HealthCheckFailed``); when Propagation is False, Ready is False with the same
  reason and message. (``SourceFailed`` is set by sync_record when the fetch or render failed.)
  ``lastTransitionTime`` changes only when a condition's status flips; ``lastUpdateTime`` is the time of
  the last status write.

Size: the object stays small whatever went wrong. A cluster entry's ``message`` is summarised (its
head, the first few problems, "and N more"; at most MAX_CLUSTER_MESSAGE characters); conditions name
the clusters with only the head of their message (the part before the first ": "), at most a few
clusters per group and MAX_CONDITION_MESSAGE characters. The full message goes to one Event
(events.py), not to the status.

Idempotence: ``status_changed`` compares statuses without their timestamps. A sync whose results
change nothing is not written at all (no request, ``changed: false``); timestamps move only together
with a real change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

APPLIED = "Applied"
FAILED = "Failed"
SUSPENDED = "Suspended"
DELETED = "Deleted"
UNREACHABLE = "Unreachable"
RESULT_STATUSES = (APPLIED, FAILED, SUSPENDED, DELETED, UNREACHABLE)

COUNT_KEYS = ("created", "configured", "recreated", "unchanged", "pruned", "deleted", "skipped", "orphaned", "failed")
WRITE_COUNTS = ("created", "configured", "recreated", "pruned", "deleted")

PROPAGATION = "Propagation"
READY = "Ready"
# Condition reasons (docs/resources.md lists them).
PROPAGATED = "Propagated"
PROPAGATION_FAILED = "PropagationFailed"
# Condition of a source whose federated object claims a wider policy than the operator's (source_policy).
POLICY = "Policy"
CLAIM_IGNORED = "ClaimIgnored"
OPERATOR_POLICY = "OperatorPolicy"
PROGRESSING = "Progressing"
SUCCEEDED = "Succeeded"
HEALTH_CHECK_FAILED = "HealthCheckFailed"

MAX_CLUSTER_MESSAGE = 300
MAX_CONDITION_MESSAGE = 400
MAX_HEADLINE = 100
SHOWN_PROBLEMS = 3
SHOWN_CLUSTERS = 5
TIME_FIELDS = frozenset(["lastTransitionTime", "lastUpdateTime", "lastAppliedTime"])


def utc_now():
    """The current time as the RFC 3339 string Kubernetes uses (second precision, UTC)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def writes(counts):
    return sum(int((counts or {}).get(key) or 0) for key in WRITE_COUNTS)


def counts_phrase(counts):
    """'created 2, configured 1, unchanged 5': the non-zero counts, in change-set order."""
    parts = ["%s %d" % (key, int(counts[key])) for key in COUNT_KEYS if (counts or {}).get(key)]
    return ", ".join(parts) if parts else "no objects"


def shorten(text, limit):
    """text cut to at most limit characters, marked with '...' when cut."""
    if text is None or len(text) <= limit:
        return text
    return text[:max(limit - 3, 0)].rstrip() + "..."


def summarize(message, limit=MAX_CLUSTER_MESSAGE, shown=SHOWN_PROBLEMS):
    """A long message as its head and first problems: 'head: p1; p2; p3; and 22 more (see Events)'.

    Engine and health messages list problems after their head ('the API server refused 25 objects,
    nothing was applied: A; B; ...'); the full list is kept in the Event of that result.
    """
    if not message or len(message) <= limit:
        return message
    head, separator, rest = message.partition(": ")
    problems = rest.split("; ") if separator else [message]
    if not separator:
        head = ""
    prefix = head + ": " if head else ""
    text = None
    for count in range(min(shown, len(problems)), 0, -1):  # as many problems as fit, at least one
        text = prefix + "; ".join(shorten(problem, MAX_HEADLINE) for problem in problems[:count])
        if len(problems) > count:
            text += "; and %d more (see Events)" % (len(problems) - count)
        if len(text) <= limit:
            return text
    return shorten(text, limit)


def headline(message):
    """The head of a message (before its first ': '), as conditions quote it."""
    if not message:
        return message
    head = message.partition(": ")[0]
    return shorten(head if len(head) >= 10 else message, MAX_HEADLINE)


def _names(names):
    """Cluster names, at most SHOWN_CLUSTERS of them, then 'and N more'."""
    shown = ", ".join(names[:SHOWN_CLUSTERS])
    return shown + (" and %d more" % (len(names) - SHOWN_CLUSTERS) if len(names) > SHOWN_CLUSTERS else "")


def _grouped(pairs):
    """[(cluster, detail)] as 'a, b (detail1), c (detail2)': clusters with the same detail named together."""
    groups, order = {}, []
    for name, detail in pairs:
        if detail not in groups:
            groups[detail] = []
            order.append(detail)
        groups[detail].append(name)
    return ", ".join("%s (%s)" % (_names(groups[d]), d) if d else _names(groups[d]) for d in order)


def normalize_results(results, revision=None):
    """Validate a sync's results: [{cluster, status, counts?, message?, revision?, healthy?}]."""
    normalized, seen = [], set()
    for index, result in enumerate(results or []):
        where = "results[%d]" % index
        if not isinstance(result, dict):
            raise FederationError("%s: expected {cluster, status, counts, message, revision}" % where)
        cluster = result.get("cluster")
        if not cluster:
            raise FederationError("%s: cluster is required" % where)
        if cluster in seen:
            raise FederationError("%s: cluster %s has two results; give one result per cluster" % (where, cluster))
        seen.add(cluster)
        state = result.get("status")
        if state not in RESULT_STATUSES:
            raise FederationError("%s (cluster %s): status %r is not one of %s"
                                  % (where, cluster, state, ", ".join(RESULT_STATUSES)))
        counts = {}
        for key, value in (result.get("counts") or {}).items():
            if key not in COUNT_KEYS:
                continue  # tolerate extra keys of a change set's counts
            try:
                number = int(value or 0)
            except (TypeError, ValueError):
                raise FederationError("%s (cluster %s): counts.%s must be a number, got %r" % (where, cluster, key, value))
            if number < 0:
                raise FederationError("%s (cluster %s): counts.%s must not be negative" % (where, cluster, key))
            if number:
                counts[key] = number
        healthy = result.get("healthy")
        if healthy is not None and not isinstance(healthy, bool):
            raise FederationError("%s (cluster %s): healthy must be true or false" % (where, cluster))
        normalized.append(dict(cluster=cluster, status=state, counts=counts, message=result.get("message") or None,
                               revision=result.get("revision") or revision, healthy=healthy))
    return normalized


def _entry(name, **fields):
    entry = {"name": name}
    entry.update((k, v) for k, v in fields.items() if v not in (None, {}, ""))
    return entry


def merge_clusters(previous_entries, results, now, track_revision=True):
    """status.clusters after this sync's results (see the module docstring), sorted by cluster name."""
    entries = dict((e.get("name"), copy.deepcopy(e)) for e in previous_entries or [] if e.get("name"))
    for result in results:
        name, previous = result["cluster"], entries.get(result["cluster"])
        state = result["status"]
        if state == DELETED:
            entries.pop(name, None)
            continue
        if state == APPLIED:
            revision = result["revision"] if track_revision else None
            noop = (previous is not None and previous.get("status") == APPLIED and not writes(result["counts"])
                    and (not track_revision or previous.get("revision") == revision))
            if noop:
                if result["healthy"] is not None:
                    previous["healthy"] = result["healthy"]
                continue
            new_revision = track_revision and (previous is None or previous.get("revision") != revision)
            applied_time = previous.get("lastAppliedTime") if previous else None
            if writes(result["counts"]) or new_revision or not applied_time:
                applied_time = now
            entries[name] = _entry(name, status=APPLIED, revision=revision, lastAppliedTime=applied_time,
                                   counts=result["counts"], message=summarize(result["message"]),
                                   healthy=result["healthy"])
        elif state in (FAILED, UNREACHABLE):
            previous = previous or {}
            entries[name] = _entry(name, status=state, revision=previous.get("revision"),
                                   lastAppliedTime=previous.get("lastAppliedTime"), counts=result["counts"],
                                   message=summarize(result["message"]))
        else:  # Suspended
            entry = copy.deepcopy(previous) if previous else {"name": name}
            entry["status"] = SUSPENDED
            entry["message"] = summarize(result["message"]) or "sync suspended: objects are left as they are"
            entries[name] = entry
    return [entries[name] for name in sorted(entries)]


def set_condition(previous_conditions, ctype, state, reason, message, now, generation=None):
    """A condition; lastTransitionTime is kept unless the status flips."""
    previous = find_condition(previous_conditions, ctype)
    transition = now
    if previous and previous.get("status") == state and previous.get("lastTransitionTime"):
        transition = previous["lastTransitionTime"]
    condition = {"type": ctype, "status": state, "reason": reason, "message": message,
                 "lastTransitionTime": transition, "lastUpdateTime": now}
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def find_condition(conditions, ctype):
    for condition in conditions or []:
        if condition.get("type") == ctype:
            return condition
    return None


def propagation_problems(entries, placed, target_revision=None):
    """What keeps an object from being propagated, as (label, text) pairs in a stable order.

    Clusters are named with the head of their message only (the entry holds the summary, the Event
    the whole message), clusters with the same head together.
    """
    by_name = dict((e["name"], e) for e in entries)
    failed, unreachable, missing, behind = [], [], [], []
    for name in placed:
        entry = by_name.get(name)
        if entry is None:
            missing.append((name, None))
        elif entry.get("status") == FAILED:
            failed.append((name, headline(entry.get("message"))))
        elif entry.get("status") == UNREACHABLE:
            unreachable.append((name, headline(entry.get("message"))))
        elif target_revision and entry.get("revision") != target_revision:
            behind.append((name, entry.get("revision") or "nothing applied"))
    stale = [(e["name"], None) for e in entries if e["name"] not in placed]
    problems = [("failed on", failed), ("unreachable", unreachable), ("not synced yet", missing),
                ("behind", behind), ("still applied to clusters outside the placement", stale)]
    return [(label, _grouped(pairs)) for label, pairs in problems if pairs]


def build_conditions(previous_conditions, entries, placed, now, generation=None, revision=None, suspended=False,
                     subject="revision"):
    """The Propagation and Ready conditions for merged entries."""
    problems = propagation_problems(entries, placed, revision)
    described = "; ".join("%s: %s" % (label, text) for label, text in problems)
    if suspended:
        held = [e["name"] for e in entries if e["name"] in placed and e.get("revision")]
        message = "sync suspended: objects are left as they are"
        if held:
            message += " (%s on %s)" % (revision or "last applied revision", _names(held))
        message += "; resume to sync again"
        if described:
            message += "; " + described
        message = shorten(message, MAX_CONDITION_MESSAGE)
        return [set_condition(previous_conditions, ctype, "False", SUSPENDED, message, now, generation)
                for ctype in (PROPAGATION, READY)]
    if problems:
        hard = any(label in ("failed on", "unreachable") for label, unused in problems)
        reason = PROPAGATION_FAILED if hard else PROGRESSING
        message = shorten(described, MAX_CONDITION_MESSAGE)
        return [set_condition(previous_conditions, ctype, "False", reason, message, now, generation)
                for ctype in (PROPAGATION, READY)]
    what = "%s %s" % (subject, revision) if revision else subject
    if placed:
        plural = "" if len(placed) == 1 else "s"
        message = shorten("%s applied to %d cluster%s: %s" % (what, len(placed), plural, _names(list(placed))),
                          MAX_CONDITION_MESSAGE)
    else:
        message = "placed on no cluster"
    propagation = set_condition(previous_conditions, PROPAGATION, "True", PROPAGATED, message, now, generation)
    by_name = dict((e["name"], e) for e in entries)
    unhealthy = [(name, headline(by_name[name].get("message"))) for name in placed
                 if by_name.get(name, {}).get("healthy") is False]
    if unhealthy:
        ready = set_condition(previous_conditions, READY, "False", HEALTH_CHECK_FAILED,
                              shorten("not healthy on: %s" % _grouped(unhealthy), MAX_CONDITION_MESSAGE), now,
                              generation)
    else:
        ready = set_condition(previous_conditions, READY, "True", SUCCEEDED, message, now, generation)
    return [propagation, ready]


def build_status(previous_status, results, placed, now, generation=None, revision=None, suspended=False,
                 track_revision=True, subject="revision", ended=()):
    """The new status of a FederatedKustomization (track_revision) or FederatedSecret (not).

    ``ended``: types of conditions other steps set that no longer hold (a ``SyncWindow`` once no sync window
    applies to the source); they are removed, so kubectl shows none rather than a stale one.
    """
    previous_status = previous_status or {}
    entries = merge_clusters(previous_status.get("clusters"), results, now, track_revision)
    last_applied = previous_status.get("lastAppliedRevision")
    if track_revision and revision and any(r["status"] == APPLIED and r["revision"] == revision for r in results):
        last_applied = revision
    target = (revision or last_applied) if track_revision else None
    conditions = build_conditions(previous_status.get("conditions"), entries, list(placed), now, generation,
                                  target, suspended, subject)
    # Conditions this module does not own (set by someone else) are kept, unless they ended.
    ours = set(c["type"] for c in conditions)
    conditions += [copy.deepcopy(c) for c in previous_status.get("conditions") or []
                   if c.get("type") not in ours and c.get("type") not in ended]
    status = {"clusters": entries, "conditions": conditions}
    if generation is not None:
        status["observedGeneration"] = generation
    if track_revision and last_applied:
        status["lastAppliedRevision"] = last_applied
    return status


def apply_policy(status, previous_status, policy, note, now, generation=None):
    """Show a source's scope in its status: ``scope`` (platform or tenant, the STATUS table and the SCOPE
    printer column), ``platform`` (what the operator's policy allows) and, when the federated object claimed
    more than that policy, condition ``Policy`` False (``ClaimIgnored``) with the reason; it turns True
    (``OperatorPolicy``) once the claim is back within the policy."""
    status["scope"] = policy.get("scope") or "tenant"
    account = policy.get("service_account")
    allowed = {}
    if status["scope"] == "platform" or policy.get("prune_crds"):
        allowed = {"clusterScopedKinds": _listed(policy.get("cluster_scoped_kinds")),
                   "namespaces": _listed(policy.get("namespaces")), "pruneCRDs": bool(policy.get("prune_crds"))}
    if account:
        allowed["serviceAccount"] = "%s/%s" % (account["namespace"], account["name"])
    if allowed:
        status["platform"] = allowed
    previous = find_condition((previous_status or {}).get("conditions"), POLICY)
    if note or previous:
        condition = set_condition((previous_status or {}).get("conditions"), POLICY, "False" if note else "True",
                                  CLAIM_IGNORED if note else OPERATOR_POLICY,
                                  note or "the federated object claims no more than the operator's policy",
                                  now, generation)
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != POLICY] + [condition]
    return status


def _listed(names):
    return ["*"] if names == "*" else list(names or [])


def build_source_status(previous_status, now, generation=None, revision=None, error=None):
    """The new status of a FederatedGitRepository: the artifact (last revision fetched) and Ready."""
    previous_status = previous_status or {}
    status = {}
    artifact = copy.deepcopy(previous_status.get("artifact") or {})
    if revision and not error and artifact.get("revision") != revision:
        artifact = {"revision": revision, "lastUpdateTime": now}
    if artifact:
        status["artifact"] = artifact
    if error:
        ready = set_condition(previous_status.get("conditions"), READY, "False", "FetchFailed", error, now, generation)
    elif artifact.get("revision"):
        ready = set_condition(previous_status.get("conditions"), READY, "True", "Succeeded",
                              "stored artifact for revision %s" % artifact["revision"], now, generation)
    else:
        ready = set_condition(previous_status.get("conditions"), READY, "Unknown", "Progressing",
                              "no revision fetched yet", now, generation)
    conditions = [ready] + [copy.deepcopy(c) for c in previous_status.get("conditions") or [] if c.get("type") != READY]
    status["conditions"] = conditions
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def without_times(value):
    """A copy of a status without its timestamps (what status_changed compares)."""
    if isinstance(value, dict):
        return dict((k, without_times(v)) for k, v in value.items() if k not in TIME_FIELDS)
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def status_changed(old, new):
    """True when new differs from old in anything but timestamps."""
    return without_times(_canonical(old or {})) != without_times(_canonical(new or {}))


def _canonical(status):
    """Order-insensitive lists keyed by name/type, empty values dropped, so equal statuses compare equal."""
    out = {}
    for key, value in status.items():
        if value in (None, [], {}, ""):
            continue
        if key == "clusters":
            value = sorted(value, key=lambda e: e.get("name", ""))
        elif key == "conditions":
            value = sorted(value, key=lambda c: c.get("type", ""))
        out[key] = value
    return out

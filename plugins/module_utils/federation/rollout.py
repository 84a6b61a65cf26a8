# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rollout rings of a source: which ring each cluster is in, the bake after each ring, rollback and holds.

A source may declare ``spec.rollout.rings`` on its FederatedKustomization: an ordered list of rings, each
``{name, clusters: [{name}], clusterSelector, bake, timeout}``. Each placed cluster belongs to the first ring
that names it or whose selector matches its labels; a ring with neither takes every cluster left and must be
the last. Ring ``i`` of every source is reconciled in *wave* ``i`` of the sync run (one module call per
attached cluster per wave at most): its clusters apply, wait until healthy (kstatus), then stay healthy for the
ring's bake time before wave ``i + 1`` starts. A ring that fails stops the later rings of its source, and each
of its clusters is re-synced to the last revision that was healthy there.

Where things are kept:

- the last healthy revision of a cluster, on that cluster: annotation ``gitops.federation/last-healthy`` of the
  source's inventory ConfigMap (``{"revision", "inputs"}``, inputs being a digest of the render inputs it was
  rendered with: url, path, substitutions, ignore), written after the cluster's ring passed its bake;
- a mirror of it in ``status.rollout.lastHealthy`` of the FederatedKustomization, which the plan step reads to
  render each cluster's rollback bundle before the rollout starts (only the plan step holds git credentials);
- a held revision in ``status.rollout.held``: a revision that was rolled back is not rolled out again until the
  upstream commit or the source (its generation) changes, or a run passes ``retry_held``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import time

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.health import CURRENT, assess
from ansible_collections.gitops.federation.plugins.module_utils.apply.inventory import inventory_name
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import ObjectRef, owner_selector
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import selector_matches

LAST_HEALTHY_ANNOTATION = "gitops.federation/last-healthy"
# Bake re-checks health this often (and once more at its end).
BAKE_INTERVAL = 5
# Ring states, in status.rollout.rings[].state and the cluster reports.
HEALTHY = "Healthy"
ROLLED_BACK = "RolledBack"
FAILED = "Failed"
HALTED = "Halted"
PENDING = "Pending"


# -- planning (pure) --------------------------------------------------------------------------------------------


def parse_rings(rollout, where, duration_seconds):
    """The rings of spec.rollout, validated: [{name, clusters, selector, bake, bake_seconds, timeout}]."""
    rings_spec = (rollout or {}).get("rings") if isinstance(rollout, dict) else rollout
    if not rings_spec:
        return []
    if not isinstance(rings_spec, list):
        raise FederationError("%s.rings: expected a list of rings" % where)
    rings, names = [], set()
    for index, spec in enumerate(rings_spec):
        here = "%s.rings[%d]" % (where, index)
        if not isinstance(spec, dict) or not spec.get("name"):
            raise FederationError("%s: every ring needs a name" % here)
        name = str(spec["name"])
        if name in names:
            raise FederationError("%s: ring name %s is used twice" % (here, name))
        names.add(name)
        clusters = []
        for entry in spec.get("clusters") or []:
            cluster = entry.get("name") if isinstance(entry, dict) else entry
            if not cluster:
                raise FederationError("%s (%s).clusters: every entry needs a name" % (here, name))
            clusters.append(str(cluster))
        selector = spec.get("clusterSelector", spec.get("cluster_selector"))
        if selector is not None and not isinstance(selector, dict):
            raise FederationError("%s (%s).clusterSelector must be a label selector mapping" % (here, name))
        rings.append(dict(name=name, clusters=clusters, selector=selector, bake=spec.get("bake") or None,
                          bake_seconds=duration_seconds(spec.get("bake"), 0, "%s (%s).bake" % (here, name)),
                          timeout=duration_seconds(spec.get("timeout"), None, "%s (%s).timeout" % (here, name))))
    for ring in rings[:-1]:
        if not ring["clusters"] and ring["selector"] is None:
            raise FederationError("%s: ring %s has neither clusters nor clusterSelector, so it takes every cluster "
                                  "left; only the last ring may" % (where, ring["name"]))
    return rings


def assign_rings(rings, placed, clusters, where="rollout"):
    """{cluster: ring index} for the placed clusters (first ring that selects a cluster wins).

    Raises when a placed cluster is in no ring: it would never be synced, so the source is refused instead.
    """
    labels = dict((c.name, c.labels) for c in clusters)
    assigned = {}
    for cluster in placed:
        for index, ring in enumerate(rings):
            catch_all = not ring["clusters"] and ring["selector"] is None
            if catch_all or cluster in ring["clusters"] or (
                    ring["selector"] is not None and selector_matches(
                        ring["selector"], labels.get(cluster) or {}, "%s.rings[%d].clusterSelector" % (where, index))):
                assigned[cluster] = index
                break
    missing = [c for c in placed if c not in assigned]
    if missing:
        raise FederationError("%s: placed clusters %s are in no ring; add them to a ring or end the rollout with a "
                              "ring that has neither clusters nor clusterSelector (it takes the rest)"
                              % (where, ", ".join(missing)))
    return assigned


def ring_plan(rings, assigned):
    """The rings as the plan carries them: [{name, index, clusters, bake, bake_seconds, timeout}]."""
    return [dict(name=r["name"], index=i, clusters=[c for c, ring in assigned.items() if ring == i], bake=r["bake"],
                 bake_seconds=r["bake_seconds"], timeout=r["timeout"]) for i, r in enumerate(rings)]


def render_digest(render):
    """A digest of the render inputs that decide what a commit renders to (not the ref: the commit is apart)."""
    inputs = dict((k, render.get(k)) for k in ("url", "path", "substitute", "ignore"))
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def commit_of(revision):
    """The commit SHA of a revision such as main@sha1:<sha> or sha1:<sha>."""
    return (revision or "").rpartition("sha1:")[2] or None


def hold_of(rollout_status, revision, generation, retry=False):
    """The hold that stops this revision (status.rollout.held), or None when it may roll out."""
    held = (rollout_status or {}).get("held") or {}
    if retry or not held.get("revision") or held.get("revision") != revision:
        return None
    if generation is not None and held.get("generation") is not None and held["generation"] != generation:
        return None
    return held


def held_message(held):
    return ("revision %s is not rolled out again: it failed in ring %s and was rolled back (%s); push a new commit, "
            "change the source, or rerun with -e gitops_rollout_retry=true"
            % (held.get("revision"), held.get("ring"), held.get("reason") or "health check failed"))


def cluster_waves(work_settings):
    """The waves (ring indices) in which one cluster has work, from its per-source settings; [0] when none."""
    waves = sorted(set(int(s.get("ring") or 0) for s in work_settings))
    return waves or [0]


# -- on the attached cluster ------------------------------------------------------------------------------------


def read_last_healthy(client, owner, namespace):
    """{revision, inputs} last recorded healthy for owner on this cluster, or None (also when unreadable)."""
    try:
        configmaps = client.discovery().find("v1", "ConfigMap")
        live = client.get(configmaps, inventory_name(owner), namespace)
    except (ApiError, FederationError):
        return None
    text = (((live or {}).get("metadata") or {}).get("annotations") or {}).get(LAST_HEALTHY_ANNOTATION)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("revision") else None


def write_last_healthy(client, owner, namespace, revision, inputs):
    """Record revision as healthy on the owner's inventory ConfigMap (a merge patch of one annotation, so the
    inventory's own writes, which do not own it, leave it alone)."""
    configmaps = client.discovery().find("v1", "ConfigMap")
    value = json.dumps(dict(revision=revision, inputs=inputs), sort_keys=True)
    client.request("PATCH", configmaps.path(namespace, inventory_name(owner)),
                   body={"metadata": {"annotations": {LAST_HEALTHY_ANNOTATION: value}}},
                   content_type="application/merge-patch+json")


def look(client, planned, namespace, owner, checks=()):
    """One look at the health of planned objects (one LIST per kind): [{subject, status, message}]."""
    discovery = client.discovery()
    selector = owner_selector(owner)
    resources = {}
    for p in planned:
        resource = p.resource or discovery.find(p.api_version, p.ref.kind)
        if resource is not None:
            resources[(resource.group, resource.version, resource.kind)] = resource
    live = {}
    for resource in resources.values():
        for item in client.list(resource, namespace if resource.namespaced else None, selector):
            live[ObjectRef.of(item)] = item
    report = []
    for p in planned:
        obj = live.get(p.ref)
        status, message = assess(obj, checks) if obj else ("InProgress", "not found")
        report.append(dict(subject=str(p.ref), status=status, message=message))
    return report


def bake(client, baking, interval=BAKE_INTERVAL, clock=time.monotonic, sleep=time.sleep):
    """Keep looking at the health of each baking source until its bake time is over.

    baking: [{key, planned, namespace, owner, checks, seconds}]. Returns {key: None (stayed healthy) or the
    message naming what stopped being healthy}. Sources bake together; each is looked at every ``interval``
    seconds and once more at the end of its bake.
    """
    start = clock()
    pending = dict((b["key"], dict(b, deadline=start + b["seconds"])) for b in baking)
    outcome = {}
    while pending:
        now = clock()
        next_deadline = min(b["deadline"] for b in pending.values())
        sleep(max(0.0, min(interval, next_deadline - now)))
        now = clock()
        for key in sorted(pending):
            entry = pending[key]
            try:
                report = look(client, entry["planned"], entry["namespace"], entry["owner"], entry["checks"])
            except (ApiError, FederationError) as err:
                report = [dict(subject="health", status="Unknown", message="could not be read: %s" % err.msg)]
            unhealthy = [r for r in report if r["status"] != CURRENT]
            if unhealthy:
                outcome[key] = "health lost after %ds of the %ds bake: %s" % (
                    int(now - start), entry["seconds"],
                    "; ".join("%s: %s" % (r["subject"], r["message"]) for r in unhealthy))
                del pending[key]
            elif now >= entry["deadline"]:
                outcome[key] = None
                del pending[key]
    return outcome


# -- recording (pure) -------------------------------------------------------------------------------------------


def _state_of(reports):
    states = set(r.get("state") for r in reports)
    for state in (FAILED, ROLLED_BACK, HALTED, HEALTHY):
        if state in states:
            return state
    return PENDING


def rollout_status(previous, entry, reports, now):
    """status.rollout of a source after a run, and the Events of its rings ((type, reason, message, time))."""
    previous = previous or {}
    last_healthy = dict(previous.get("lastHealthy") or {})
    previous_rings = dict((r.get("name"), r) for r in previous.get("rings") or [])
    by_cluster = dict((r["cluster"], r) for r in reports)
    for cluster, report in by_cluster.items():
        if report.get("healthy_revision"):
            last_healthy[cluster] = report["healthy_revision"]
    placed = set(entry.get("placed") or [])
    last_healthy = dict((c, r) for c, r in last_healthy.items() if c in placed)
    rings, events, held = [], [], previous.get("held")
    target = entry.get("revision")
    total = len(entry.get("rings") or [])
    if entry.get("held"):
        held = entry["held_status"]
    failed_ring = None
    for ring in entry.get("rings") or []:
        ran = [by_cluster[c] for c in ring["clusters"] if c in by_cluster]
        state = _state_of(ran) if ran else (previous_rings.get(ring["name"]) or {}).get("state") or PENDING
        revisions = sorted(set(by_cluster[c].get("revision") or last_healthy.get(c) if c in by_cluster
                               else last_healthy.get(c) for c in ring["clusters"]) - set([None]))
        item = dict(name=ring["name"], clusters=list(ring["clusters"]), state=state,
                    revision=", ".join(revisions) or None)
        if ring.get("bake"):
            item["bake"] = ring["bake"]
        messages = ["%s: %s" % (r["cluster"], r["message"]) for r in ran if r.get("message")]
        if messages:
            item["message"] = "; ".join(messages)[:1024]
        elif not ran and (previous_rings.get(ring["name"]) or {}).get("message"):
            item["message"] = previous_rings[ring["name"]]["message"]  # not run this time: as it was
        rings.append(dict((k, v) for k, v in item.items() if v not in (None, "")))
        acted = [r for r in ran if r.get("changed") or r.get("state") != HEALTHY]
        if not acted:
            continue
        what = "ring %s (%d of %d: %s)" % (ring["name"], ring["index"] + 1, total, ", ".join(ring["clusters"]))
        started = min(r.get("started") or now for r in ran)
        finished = max(r.get("finished") or now for r in ran)
        if state == HALTED:
            events.append(("Warning", "RingHalted", "%s %s" % (what, ran[0].get("message")), finished))
            continue
        events.append(("Normal", "RingStarted", "%s started rolling out revision %s" % (what, target), started))
        if state == HEALTHY:
            bake_text = " and stayed healthy for its bake of %s" % ring["bake"] if ring.get("bake") else ""
            events.append(("Normal", "RingHealthy", "%s healthy at revision %s%s" % (what, target, bake_text),
                           finished))
            continue
        failed_ring = failed_ring or ring["name"]
        events.append(("Warning", "RingFailed", "%s failed at revision %s: %s" % (what, target, "; ".join(messages)),
                       finished))
        for report in ran:
            if report.get("state") == ROLLED_BACK:
                events.append(("Warning", "RolledBack", "%s rolled back from %s to %s: %s" % (
                    report["cluster"], target, report.get("revision"), report.get("reason")), finished))
    if failed_ring and any(r.get("state") == ROLLED_BACK for r in reports):
        first = next(r for r in reports if r.get("state") == ROLLED_BACK)
        held = dict(revision=target, generation=entry.get("generation"), ring=failed_ring,
                    reason=(first.get("reason") or "")[:512], since=now)
    elif reports and all(r.get("state") == HEALTHY for r in reports) and not entry.get("held"):
        held = None
    status = dict(revision=target or previous.get("revision"), rings=rings)
    if last_healthy:
        status["lastHealthy"] = last_healthy
    if held:
        status["held"] = held
    return status, events

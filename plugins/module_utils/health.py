# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readiness of live objects, kstatus-style: Current, InProgress or Failed, with a reason.

Built-in rules cover the workload kinds, Jobs and CRDs, and any object that reports a ``Ready``
condition; custom rules are JMESPath expressions over the live object, per kind.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

try:
    import jmespath

    HAS_JMESPATH = True
except ImportError:
    HAS_JMESPATH = False

CURRENT = "Current"
IN_PROGRESS = "InProgress"
FAILED = "Failed"


class HealthCheck:
    """A custom rule: for objects of apiVersion/kind, JMESPath expressions deciding current/failed."""

    def __init__(self, kind, current, api_version=None, failed=None, index=0):
        if not HAS_JMESPATH:
            raise FederationError("health_checks need the jmespath Python library: pip install jmespath")
        self.kind = kind
        self.api_version = api_version
        self.source = dict(current=current, failed=failed)
        try:
            self.current = jmespath.compile(current)
            self.failed = jmespath.compile(failed) if failed else None
        except jmespath.exceptions.JMESPathError as err:
            raise FederationError("health_checks[%d] (%s): invalid JMESPath expression: %s" % (index, kind, err))

    def matches(self, obj):
        return obj.get("kind") == self.kind and (not self.api_version or obj.get("apiVersion") == self.api_version)

    def evaluate(self, obj):
        if self.failed is not None and self.failed.search(obj):
            return FAILED, "custom health check failed: %s" % self.source["failed"]
        if self.current.search(obj):
            return CURRENT, "custom health check passed"
        return IN_PROGRESS, "custom health check not yet true: %s" % self.source["current"]


def parse_health_checks(specs):
    checks = []
    for index, spec in enumerate(specs or []):
        if not spec.get("kind") or not spec.get("current"):
            raise FederationError("health_checks[%d]: kind and current (a JMESPath expression) are required" % index)
        checks.append(HealthCheck(spec["kind"], spec["current"], spec.get("api_version"), spec.get("failed"), index))
    return checks


def _conditions(obj):
    return dict((c.get("type"), c) for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict))


def _generation_observed(obj):
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return False
    return True


def assess(obj, custom_checks=()):
    """(status, message) for one live object."""
    for check in custom_checks:
        if check.matches(obj):
            return check.evaluate(obj)
    kind = obj.get("kind")
    rule = _RULES.get(kind)
    if rule is not None:
        return rule(obj)
    return _generic(obj)


def _replicas_rule(ready_field, what):
    def rule(obj):
        if not _generation_observed(obj):
            return IN_PROGRESS, "%s generation %s not yet observed" % (what, obj["metadata"].get("generation"))
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        conditions = _conditions(obj)
        progressing = conditions.get("Progressing") or {}
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return FAILED, "progress deadline exceeded: %s" % progressing.get("message", "")
        if "status" not in obj or "observedGeneration" not in status:
            return IN_PROGRESS, "%s has no status yet (no controller has observed it)" % what
        wanted = spec.get("replicas", 1)
        for field in ("updatedReplicas", ready_field):
            have = status.get(field, 0)
            if have < wanted:
                return IN_PROGRESS, "%s: %s %d of %d" % (what, field, have, wanted)
        if kind_is(obj, "StatefulSet") and status.get("updateRevision") and \
                status.get("currentRevision") != status.get("updateRevision"):
            return IN_PROGRESS, "StatefulSet rolling update to %s in progress" % status.get("updateRevision")
        available = conditions.get("Available")
        if available is not None and available.get("status") != "True":
            return IN_PROGRESS, "Available condition is %s: %s" % (available.get("status"), available.get("message", ""))
        return CURRENT, "%d/%d replicas ready" % (status.get(ready_field, 0), wanted)
    return rule


def kind_is(obj, kind):
    return obj.get("kind") == kind


def _daemonset(obj):
    if not _generation_observed(obj):
        return IN_PROGRESS, "DaemonSet generation not yet observed"
    status = obj.get("status") or {}
    if "observedGeneration" not in status:
        return IN_PROGRESS, "DaemonSet has no status yet (no controller has observed it)"
    desired = status.get("desiredNumberScheduled", 0)
    for field in ("updatedNumberScheduled", "numberAvailable"):
        if status.get(field, 0) < desired:
            return IN_PROGRESS, "DaemonSet: %s %d of %d" % (field, status.get(field, 0), desired)
    return CURRENT, "%d/%d pods available" % (status.get("numberAvailable", 0), desired)


def _job(obj):
    conditions = _conditions(obj)
    for failed in ("Failed", "FailureTarget"):
        if (conditions.get(failed) or {}).get("status") == "True":
            return FAILED, "Job failed: %s" % conditions[failed].get("message", conditions[failed].get("reason", ""))
    if (conditions.get("Complete") or {}).get("status") == "True":
        return CURRENT, "Job complete"
    return IN_PROGRESS, "Job not complete"


def _crd(obj):
    conditions = _conditions(obj)
    names = conditions.get("NamesAccepted") or {}
    if names.get("status") == "False":
        return FAILED, "names not accepted: %s" % names.get("message", "")
    if (conditions.get("Established") or {}).get("status") == "True":
        return CURRENT, "CRD established"
    return IN_PROGRESS, "CRD not yet established"


def _generic(obj):
    """Objects with a Ready condition follow it (once their generation is observed); others are current."""
    ready = _conditions(obj).get("Ready")
    if ready is None:
        return CURRENT, "no readiness reported"
    observed = ready.get("observedGeneration", (obj.get("status") or {}).get("observedGeneration"))
    generation = (obj.get("metadata") or {}).get("generation")
    if observed is not None and generation is not None and observed < generation:
        return IN_PROGRESS, "generation %s not yet observed" % generation
    if ready.get("status") == "True":
        return CURRENT, ready.get("message") or "Ready"
    reason = ready.get("reason") or "NotReady"
    message = "Ready is %s (%s): %s" % (ready.get("status"), reason, ready.get("message", ""))
    if (_conditions(obj).get("Stalled") or {}).get("status") == "True":
        return FAILED, message
    return IN_PROGRESS, message


_RULES = {
    "Deployment": _replicas_rule("availableReplicas", "Deployment"),
    "ReplicaSet": _replicas_rule("availableReplicas", "ReplicaSet"),
    "StatefulSet": _replicas_rule("readyReplicas", "StatefulSet"),
    "DaemonSet": _daemonset,
    "Job": _job,
    "CustomResourceDefinition": _crd,
}

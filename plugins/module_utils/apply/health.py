# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readiness of live objects, kstatus-style: Current, InProgress or Failed, with a reason.

The rules follow kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status): first the properties every
object shares (being deleted, generation not yet observed, ``Reconciling``/``Stalled`` conditions),
then a rule per built-in kind (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, Pod, PVC, Service,
PodDisruptionBudget, CRD), then a ``Ready`` condition; an object none of these speak for is Current.
Custom rules (JMESPath expressions over the live object, per kind) replace all of that for their kind.

Deliberate differences from kstatus, because a GitOps wait must not pass on an unfinished rollout:
a Job is Current only once Complete (kstatus: once started); a Pod in phase Failed is Failed
(kstatus: Current); a Pod whose container waits in ImagePullBackOff or InvalidImageName is Failed
like CrashLoopBackOff; workload objects no controller has observed yet (no ``status.observedGeneration``)
are InProgress; a Pod that cannot be scheduled stays InProgress until the wait times out (kstatus: Failed after
15 s), since an autoscaler may still add a node; a StatefulSet with partition 0 (the apiserver's default) must
also finish its rolling update (kstatus: Current once updatedReplicas is reached).
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


# The suboptions of a module's health_checks option (documented in doc_fragments/health_checks.py).
HEALTH_CHECK_OPTIONS = dict(
    kind=dict(type="str", required=True),
    api_version=dict(type="str"),
    current=dict(type="str", required=True),
    failed=dict(type="str"),
)


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


def _int(mapping, field, default=0):
    value = (mapping or {}).get(field)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _generation_observed(obj):
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return False
    return True


def _why(condition):
    """ "Reason: message" of a condition, whichever parts it has."""
    parts = [p for p in (condition.get("reason"), condition.get("message")) if p]
    return ": ".join(parts) or condition.get("type", "")


def assess(obj, custom_checks=()):
    """(status, message) for one live object."""
    for check in custom_checks:
        if check.matches(obj):
            return check.evaluate(obj)
    generic = _generic_properties(obj)
    if generic is not None:
        return generic
    rule = _RULES.get(obj.get("kind"))
    if rule is not None:
        return rule(obj)
    return _ready_condition(obj)


def _generic_properties(obj):
    """kstatus' checks common to every kind: deletion, observed generation, Reconciling and Stalled."""
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return IN_PROGRESS, "%s is being deleted (deletionTimestamp %s)" % (obj.get("kind"), metadata["deletionTimestamp"])
    if not _generation_observed(obj):
        return IN_PROGRESS, "%s generation %s not yet observed (observedGeneration %s)" % (
            obj.get("kind"), metadata.get("generation"), obj["status"].get("observedGeneration"))
    conditions = _conditions(obj)
    reconciling, stalled = conditions.get("Reconciling") or {}, conditions.get("Stalled") or {}
    if stalled.get("status") == "True":
        return FAILED, "Stalled: %s" % _why(stalled)
    if reconciling.get("status") == "True":
        return IN_PROGRESS, "Reconciling: %s" % _why(reconciling)
    return None


def _observed(obj, what):
    """InProgress while no controller has written status.observedGeneration (else None)."""
    if "observedGeneration" not in (obj.get("status") or {}):
        return IN_PROGRESS, "%s has no status yet (no controller has observed it)" % what
    return None


def _replica_counts(obj, checks):
    """First (InProgress, message) whose wanted count exceeds what status reports, else None.

    checks: (status field, wanted count) pairs, in kstatus' order.
    """
    status = obj.get("status") or {}
    for field, wanted in checks:
        have = _int(status, field)
        if wanted > have:
            return IN_PROGRESS, "%s: %s %d of %d" % (obj.get("kind"), field, have, wanted)
    return None


def _extra_pods(obj, wanted):
    have = _int(obj.get("status"), "replicas")
    if have > wanted:
        return IN_PROGRESS, "%s: %d old pods pending termination" % (obj.get("kind"), have - wanted)
    return None


def _deployment(obj):
    conditions = _conditions(obj)
    progressing = conditions.get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return FAILED, "progress deadline exceeded: %s" % progressing.get("message", "")
    not_observed = _observed(obj, "Deployment")
    if not_observed:
        return not_observed
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    wanted = _int(spec, "replicas", 1)
    updated = _int(status, "updatedReplicas")
    result = (_replica_counts(obj, [("replicas", wanted), ("updatedReplicas", wanted)])
              or _extra_pods(obj, wanted)
              or _replica_counts(obj, [("availableReplicas", updated), ("readyReplicas", wanted)]))
    if result:
        return result
    # Without a progress deadline the controller never reports NewReplicaSetAvailable. (kstatus also waits
    # when the condition is missing altogether; the controller sets it with the first status it writes.)
    if "progressDeadlineSeconds" in spec and progressing and not (
            progressing.get("status") == "True" and progressing.get("reason") == "NewReplicaSetAvailable"):
        return IN_PROGRESS, "new ReplicaSet not yet available (Progressing: %s)" % (_why(progressing) or "none")
    available = conditions.get("Available")
    if wanted and (available or {}).get("status") != "True":
        return IN_PROGRESS, "Available condition is %s: %s" % (
            (available or {}).get("status", "missing"), (available or {}).get("message", ""))
    return CURRENT, "%d/%d replicas ready" % (_int(status, "availableReplicas"), wanted)


def _replicaset(obj):
    not_observed = _observed(obj, "ReplicaSet")
    if not_observed:
        return not_observed
    failure = _conditions(obj).get("ReplicaFailure") or {}
    if failure.get("status") == "True":
        # kstatus keeps this InProgress: quota or admission may let the pods in later.
        return IN_PROGRESS, "ReplicaFailure: %s" % _why(failure)
    wanted = _int(obj.get("spec"), "replicas", 1)
    result = (_replica_counts(obj, [("fullyLabeledReplicas", wanted), ("availableReplicas", wanted),
                                    ("readyReplicas", wanted)])
              or _extra_pods(obj, wanted))
    return result or (CURRENT, "%d/%d replicas ready" % (_int(obj.get("status"), "readyReplicas"), wanted))


def _statefulset(obj):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return CURRENT, "StatefulSet uses the OnDelete update strategy (pods are updated by hand)"
    not_observed = _observed(obj, "StatefulSet")
    if not_observed:
        return not_observed
    wanted = _int(spec, "replicas", 1)
    result = _replica_counts(obj, [("replicas", wanted), ("readyReplicas", wanted)]) or _extra_pods(obj, wanted)
    if result:
        return result
    # The apiserver defaults the partition to 0, which partitions nothing: then the revisions must match too.
    partition = _int(strategy.get("rollingUpdate"), "partition", 0)
    if partition > 0:
        result = _replica_counts(obj, [("updatedReplicas", wanted - partition)])
        return result or (CURRENT, "partitioned rollout complete: %d updated" % _int(status, "updatedReplicas"))
    result = _replica_counts(obj, [("currentReplicas", wanted)])
    if result:
        return result
    if status.get("currentRevision") != status.get("updateRevision"):
        return IN_PROGRESS, "StatefulSet rolling update to %s in progress" % status.get("updateRevision")
    return CURRENT, "%d/%d replicas ready" % (_int(status, "readyReplicas"), wanted)


def _daemonset(obj):
    if "generation" not in (obj.get("metadata") or {}):
        return IN_PROGRESS, "DaemonSet has no metadata.generation"
    not_observed = _observed(obj, "DaemonSet")
    if not_observed:
        return not_observed
    status = obj.get("status") or {}
    if "desiredNumberScheduled" not in status:
        return IN_PROGRESS, "DaemonSet: status.desiredNumberScheduled not reported yet"
    desired = _int(status, "desiredNumberScheduled")
    result = _replica_counts(obj, [(field, desired) for field in (
        "currentNumberScheduled", "updatedNumberScheduled", "numberAvailable", "numberReady")])
    return result or (CURRENT, "%d/%d pods available" % (_int(status, "numberAvailable"), desired))


def _job(obj):
    conditions = _conditions(obj)
    status = obj.get("status") or {}
    counts = "succeeded %d, failed %d, active %d" % (_int(status, "succeeded"), _int(status, "failed"),
                                                     _int(status, "active"))
    # FailureTarget comes before Failed while the Job's pods are terminated: it already decides the outcome.
    for failed in ("Failed", "FailureTarget"):
        if (conditions.get(failed) or {}).get("status") == "True":
            return FAILED, "Job failed (%s): %s" % (_why(conditions[failed]), counts)
    if (conditions.get("Complete") or {}).get("status") == "True":
        return CURRENT, "Job complete: %s" % counts
    if (conditions.get("Suspended") or {}).get("status") == "True":
        return CURRENT, "Job is suspended"
    if not status.get("startTime"):
        return IN_PROGRESS, "Job not started"
    return IN_PROGRESS, "Job not complete: %s" % counts


# Container waiting reasons the kubelet only leaves by backing off and retrying the same thing.
_STUCK_WAITING = ("CrashLoopBackOff", "ImagePullBackOff", "InvalidImageName")


def _pod(obj):
    status = obj.get("status") or {}
    phase = status.get("phase")
    conditions = _conditions(obj)
    if phase == "Succeeded":
        return CURRENT, "Pod completed successfully"
    if phase == "Failed":
        return FAILED, "Pod failed%s" % ("" if not status.get("reason") else " (%s): %s" % (
            status["reason"], status.get("message", "")))
    stuck = []
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = ((container or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _STUCK_WAITING:
            stuck.append("%s %s%s" % (container.get("name"), waiting["reason"],
                                      ": %s" % waiting["message"] if waiting.get("message") else ""))
    if phase == "Running":
        if (conditions.get("Ready") or {}).get("status") == "True":
            return CURRENT, "Pod is Ready"
        if stuck:
            return FAILED, "containers failing: %s" % "; ".join(stuck)
        return IN_PROGRESS, "Pod is running but not Ready"
    if phase == "Pending":
        if stuck:
            return FAILED, "containers failing: %s" % "; ".join(stuck)
        scheduled = conditions.get("PodScheduled") or {}
        if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            return IN_PROGRESS, "Pod not scheduled: %s" % scheduled.get("message", "Unschedulable")
        return IN_PROGRESS, "Pod is Pending"
    return IN_PROGRESS, "Pod phase not reported yet"


def _pvc(obj):
    phase = (obj.get("status") or {}).get("phase", "unknown")
    if phase != "Bound":
        return IN_PROGRESS, "PersistentVolumeClaim is not Bound (phase %s)" % phase
    return CURRENT, "PersistentVolumeClaim is Bound"


def _service(obj):
    spec = obj.get("spec") or {}
    if spec.get("type") == "LoadBalancer" and not spec.get("clusterIP"):
        return IN_PROGRESS, "LoadBalancer Service has no cluster IP yet"
    return CURRENT, "Service is ready"


def _crd(obj):
    conditions = _conditions(obj)
    names = conditions.get("NamesAccepted") or {}
    if names.get("status") == "False":
        return FAILED, "names not accepted: %s" % names.get("message", "")
    established = conditions.get("Established") or {}
    if established.get("status") == "True":
        return CURRENT, "CRD established"
    if established.get("status") == "False" and established.get("reason") != "Installing":
        return FAILED, "CRD not established: %s" % _why(established)
    return IN_PROGRESS, "CRD not yet established"


def _ready_condition(obj):
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
    return IN_PROGRESS, "Ready is %s (%s): %s" % (ready.get("status"), reason, ready.get("message", ""))


def _current(obj):
    return CURRENT, "%s has no rollout to wait for" % obj.get("kind")


_RULES = {
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "Job": _job,
    "Pod": _pod,
    "PersistentVolumeClaim": _pvc,
    "Service": _service,
    "PodDisruptionBudget": _current,
    "CustomResourceDefinition": _crd,
}

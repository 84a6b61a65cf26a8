# pylint: disable=repeated-keyword  # dict(full, key=...) variants of one status are the point of these tests

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.health import (
    CURRENT, FAILED, IN_PROGRESS, assess, parse_health_checks)


def deployment(status=None, generation=2, replicas=2):
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "generation": generation},
           "spec": {"replicas": replicas}}
    if status is not None:
        obj["status"] = status
    return obj


READY = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2,
         "conditions": [{"type": "Available", "status": "True"}]}


def test_deployment_without_status_is_in_progress_with_reason():
    status, message = assess(deployment())
    assert status == IN_PROGRESS and "no status yet" in message


def test_deployment_ready():
    assert assess(deployment(READY)) == (CURRENT, "2/2 replicas ready")


def test_deployment_old_generation_and_partial_rollout():
    assert assess(deployment(dict(READY, observedGeneration=1)))[0] == IN_PROGRESS
    status, message = assess(deployment(dict(READY, availableReplicas=1)))
    assert status == IN_PROGRESS and "availableReplicas 1 of 2" in message


def test_deployment_deadline_exceeded_fails():
    failing = dict(READY, conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}])
    assert assess(deployment(failing))[0] == FAILED


def test_job_and_crd_and_ready_condition():
    assert assess({"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}})[0] == CURRENT
    assert assess({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True"}]}})[0] == FAILED
    assert assess({"kind": "CustomResourceDefinition", "status": {}})[0] == IN_PROGRESS
    ready = {"kind": "Thing", "metadata": {"generation": 3},
             "status": {"observedGeneration": 3, "conditions": [{"type": "Ready", "status": "True"}]}}
    assert assess(ready)[0] == CURRENT
    stale = {"kind": "Thing", "metadata": {"generation": 4}, "status": ready["status"]}
    assert assess(stale)[0] == IN_PROGRESS
    assert assess({"kind": "ConfigMap"})[0] == CURRENT


def test_custom_jmespath_checks_override_builtin_rules():
    checks = parse_health_checks([{"kind": "Deployment", "current": "status.phase == 'Running'",
                                   "failed": "status.phase == 'Error'"}])
    assert assess(deployment({"phase": "Running"}), checks)[0] == CURRENT
    assert assess(deployment({"phase": "Error"}), checks)[0] == FAILED
    assert assess(deployment({"phase": "Pending"}), checks)[0] == IN_PROGRESS


def test_invalid_jmespath_names_the_check():
    with pytest.raises(FederationError, match=r"health_checks\[0\] \(Thing\): invalid JMESPath"):
        parse_health_checks([{"kind": "Thing", "current": "status.[["}])


# -- kstatus rules (sigs.k8s.io/cli-utils pkg/kstatus/status) -------------------------------------------------

def with_conditions(obj, *conditions):
    obj.setdefault("status", {})["conditions"] = [dict(zip(("type", "status", "reason", "message"), c)) for c in conditions]
    return obj


def test_any_kind_being_deleted_or_with_unobserved_generation_is_in_progress():
    deleting = {"kind": "ConfigMap", "metadata": {"name": "c", "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    status, message = assess(deleting)
    assert status == IN_PROGRESS and "being deleted" in message
    # kstatus compares with !=: an observedGeneration ahead of generation is not "observed" either.
    ahead = {"kind": "Thing", "metadata": {"generation": 2}, "status": {"observedGeneration": 3}}
    assert assess(ahead)[0] == IN_PROGRESS


def test_stalled_and_reconciling_conditions_decide_for_every_kind():
    stalled = with_conditions({"kind": "Widget", "metadata": {"generation": 1}, "status": {"observedGeneration": 1}},
                              ("Ready", "True", "Ok", ""), ("Stalled", "True", "InvalidSpec", "size must be > 0"))
    assert assess(stalled) == (FAILED, "Stalled: InvalidSpec: size must be > 0")
    reconciling = with_conditions({"kind": "Widget"}, ("Ready", "True"), ("Reconciling", "True", "Scaling", "2 of 3"))
    assert assess(reconciling) == (IN_PROGRESS, "Reconciling: Scaling: 2 of 3")
    # Even built-in kinds: a Deployment whose status is complete but reports Stalled has failed.
    stalled_deployment = with_conditions(deployment(dict(READY)), ("Stalled", "True", "Quota", "exceeded"))
    assert assess(stalled_deployment)[0] == FAILED


def test_custom_resource_ready_condition():
    widget = {"kind": "Widget", "metadata": {"generation": 1}, "status": {"observedGeneration": 1}}
    assert assess(with_conditions(dict(widget), ("Ready", "False", "Waiting", "db not up")))[0] == IN_PROGRESS
    assert assess(with_conditions(dict(widget), ("Ready", "Unknown")))[0] == IN_PROGRESS
    assert assess(with_conditions(dict(widget), ("Ready", "True", "Done", "all good"))) == (CURRENT, "all good")


def test_deployment_counts_in_kstatus_order():
    # Fewer pods than wanted, fewer updated, old pods still terminating, updated but not available, not ready.
    cases = [
        (dict(READY, replicas=1), "replicas 1 of 2"),
        (dict(READY, updatedReplicas=1), "updatedReplicas 1 of 2"),
        (dict(READY, replicas=3), "1 old pods pending termination"),
        (dict(READY, availableReplicas=1), "availableReplicas 1 of 2"),
        (dict(READY, readyReplicas=1), "readyReplicas 1 of 2"),
    ]
    for status, reason in cases:
        result, message = assess(deployment(status))
        assert result == IN_PROGRESS and reason in message, (status, message)


def test_deployment_with_progress_deadline_waits_for_new_replicaset_available():
    obj = deployment(dict(READY))
    obj["spec"]["progressDeadlineSeconds"] = 600
    updating = with_conditions(obj, ("Available", "True"), ("Progressing", "True", "ReplicaSetUpdated", "rs progressing"))
    status, message = assess(updating)
    assert status == IN_PROGRESS and "ReplicaSetUpdated" in message
    done = with_conditions(obj, ("Available", "True"), ("Progressing", "True", "NewReplicaSetAvailable", "done"))
    assert assess(done) == (CURRENT, "2/2 replicas ready")
    exceeded = with_conditions(obj, ("Available", "True"),
                               ("Progressing", "False", "ProgressDeadlineExceeded", 'ReplicaSet "d-1" has timed out'))
    assert assess(exceeded) == (FAILED, 'progress deadline exceeded: ReplicaSet "d-1" has timed out')


def test_deployment_scaled_to_zero_is_current():
    zero = {"observedGeneration": 2, "conditions": [{"type": "Available", "status": "True"}]}
    assert assess(deployment(zero, replicas=0))[0] == CURRENT


def replicaset(**status):
    return {"kind": "ReplicaSet", "metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": dict({"observedGeneration": 1}, **status)}


def test_replicaset():
    full = dict(replicas=2, fullyLabeledReplicas=2, availableReplicas=2, readyReplicas=2)
    assert assess(replicaset(**full))[0] == CURRENT
    assert "fullyLabeledReplicas 1 of 2" in assess(replicaset(**dict(full, fullyLabeledReplicas=1)))[1]
    assert "1 old pods" in assess(replicaset(**dict(full, replicas=3)))[1]
    failure = with_conditions(replicaset(**full), ("ReplicaFailure", "True", "FailedCreate", "quota exceeded"))
    assert assess(failure) == (IN_PROGRESS, "ReplicaFailure: FailedCreate: quota exceeded")


def statefulset(strategy=None, **status):
    spec = {"replicas": 3}
    if strategy:
        spec["updateStrategy"] = strategy
    return {"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": spec,
            "status": dict({"observedGeneration": 1}, **status)}


def test_statefulset():
    done = dict(replicas=3, readyReplicas=3, currentReplicas=3, updatedReplicas=3, currentRevision="r2",
                updateRevision="r2")
    assert assess(statefulset(**done)) == (CURRENT, "3/3 replicas ready")
    assert "readyReplicas 2 of 3" in assess(statefulset(**dict(done, readyReplicas=2)))[1]
    assert "currentReplicas 1 of 3" in assess(statefulset(**dict(done, currentReplicas=1)))[1]
    assert assess(statefulset(**dict(done, currentRevision="r1")))[0] == IN_PROGRESS
    # OnDelete: pods are replaced by hand, nothing to wait for.
    assert assess(statefulset({"type": "OnDelete"}))[0] == CURRENT
    # A partition only rolls replicas at or above it.
    partitioned = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    rolled = dict(done, currentRevision="r1", currentReplicas=2, updatedReplicas=1)
    assert assess(statefulset(partitioned, **rolled))[0] == CURRENT
    assert assess(statefulset(partitioned, **dict(rolled, updatedReplicas=0)))[0] == IN_PROGRESS
    # Partition 0 (the apiserver's default) partitions nothing: the revisions must match.
    unpartitioned = {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert assess(statefulset(unpartitioned, **done)) == (CURRENT, "3/3 replicas ready")
    assert assess(statefulset(unpartitioned, **dict(done, currentRevision="r1")))[0] == IN_PROGRESS


def daemonset(**status):
    return {"kind": "DaemonSet", "metadata": {"generation": 1}, "status": status}


def test_daemonset():
    full = dict(observedGeneration=1, desiredNumberScheduled=2, currentNumberScheduled=2, updatedNumberScheduled=2,
                numberAvailable=2, numberReady=2)
    assert assess(daemonset(**full)) == (CURRENT, "2/2 pods available")
    assert "no status yet" in assess(daemonset())[1]
    no_desired = dict(full)
    del no_desired["desiredNumberScheduled"]
    assert "desiredNumberScheduled" in assess(daemonset(**no_desired))[1]
    for field in ("currentNumberScheduled", "updatedNumberScheduled", "numberAvailable", "numberReady"):
        status, message = assess(daemonset(**dict(full, **{field: 1})))
        assert status == IN_PROGRESS and "%s 1 of 2" % field in message


def job(*conditions, **status):
    return with_conditions({"kind": "Job", "status": dict(status)}, *conditions)


def test_job():
    assert assess(job()) == (IN_PROGRESS, "Job not started")
    assert assess(job(startTime="2026-01-01T00:00:00Z", active=1))[0] == IN_PROGRESS
    assert assess(job(("Complete", "True"), succeeded=1))[0] == CURRENT
    assert assess(job(("Suspended", "True")))[0] == CURRENT
    status, message = assess(job(("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                                 failed=2))
    assert status == FAILED
    assert message == "Job failed (BackoffLimitExceeded: Job has reached the specified backoff limit): " \
                      "succeeded 0, failed 2, active 0"


def pod(phase, ready=None, waiting=None, **extra):
    obj = {"kind": "Pod", "status": dict({"phase": phase}, **extra)}
    if ready is not None:
        with_conditions(obj, ("Ready", ready))
    if waiting:
        waiting_state = {"reason": waiting, "message": "back-off 40s"}
        obj["status"]["containerStatuses"] = [{"name": "app", "state": {"waiting": waiting_state}}]
    return obj


def test_pod():
    assert assess(pod("Running", "True"))[0] == CURRENT
    assert assess(pod("Succeeded"))[0] == CURRENT
    assert assess(pod("Running", "False")) == (IN_PROGRESS, "Pod is running but not Ready")
    assert assess(pod("Running", "False", "CrashLoopBackOff")) == (
        FAILED, "containers failing: app CrashLoopBackOff: back-off 40s")
    assert assess(pod("Pending", None, "ImagePullBackOff"))[0] == FAILED
    assert assess(pod("Pending", None, "ContainerCreating"))[0] == IN_PROGRESS
    assert assess(pod("Failed", reason="Evicted", message="low on memory")) == (
        FAILED, "Pod failed (Evicted): low on memory")
    unschedulable = with_conditions(pod("Pending"), ("PodScheduled", "False", "Unschedulable", "0/1 nodes available"))
    assert assess(unschedulable) == (IN_PROGRESS, "Pod not scheduled: 0/1 nodes available")
    assert assess({"kind": "Pod"})[0] == IN_PROGRESS


def test_pvc_service_pdb_and_crd():
    assert assess({"kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}})[0] == IN_PROGRESS
    assert assess({"kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}})[0] == CURRENT
    assert assess({"kind": "Service", "spec": {"type": "LoadBalancer"}})[0] == IN_PROGRESS
    assert assess({"kind": "Service", "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.9"}})[0] == CURRENT
    assert assess({"kind": "PodDisruptionBudget", "metadata": {"generation": 1},
                   "status": {"observedGeneration": 1}})[0] == CURRENT
    crd = {"kind": "CustomResourceDefinition"}
    assert assess(with_conditions(dict(crd), ("Established", "False", "Installing")))[0] == IN_PROGRESS
    assert assess(with_conditions(dict(crd), ("Established", "False", "Broken", "x")))[0] == FAILED
    assert assess(with_conditions(dict(crd), ("NamesAccepted", "False", "Conflict", "plural taken")))[0] == FAILED


def test_deployment_status_without_progressing_condition_is_judged_on_counts():
    # As written by hand (or by a controller without a progress deadline): counts and Available decide.
    obj = deployment(dict(READY))
    obj["spec"]["progressDeadlineSeconds"] = 600
    assert assess(obj) == (CURRENT, "2/2 replicas ready")


def test_rules_checked_against_kstatus_core():
    # Cases read off kstatus' core.go (sigs.k8s.io/cli-utils pkg/kstatus/status): same verdict here.
    unset = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "generation": 1}, "spec": {}}
    # spec.replicas unset counts as 1, as the controller defaults it.
    assert assess(dict(unset, status=dict(READY, observedGeneration=1, replicas=0, updatedReplicas=0)))[0] == IN_PROGRESS
    # updatedReplicas < replicas: an old ReplicaSet still serves, not Current however many pods are ready.
    status, message = assess(deployment(dict(READY, updatedReplicas=1, availableReplicas=2, readyReplicas=2)))
    assert status == IN_PROGRESS and "updatedReplicas 1 of 2" in message
    # updated pods not yet available (kstatus: updatedReplicas > availableReplicas).
    assert assess(deployment(dict(READY, availableReplicas=1)))[0] == IN_PROGRESS
    # PodDisruptionBudget, ConfigMap, Secret: nothing to wait for.
    for kind in ("PodDisruptionBudget", "ConfigMap", "Secret"):
        assert assess({"kind": kind, "metadata": {"name": "x"}})[0] == CURRENT
    # Deliberate difference (module docstring): kstatus fails a Pod unschedulable for 15 s; a GitOps wait keeps
    # waiting until its timeout, since an autoscaler may still add the node.
    unschedulable = {"kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}]}}
    assert assess(unschedulable)[0] == IN_PROGRESS

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.health import (
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

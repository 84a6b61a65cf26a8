import json

from ansible_collections.gitops.federation.plugins.module_utils.drift import (
    REDACTED, REDACTED_CHANGED, applied_body, apply_is_noop, drift_of, extract, for_display, normalize, same_object)
from ansible_collections.gitops.federation.plugins.module_utils.objects import FIELD_MANAGER

DESIRED = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "team", "labels": {"app": "web"}},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}}},
}

FIELDS = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
        'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {},
                             "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}}}},
}


def live(**changes):
    obj = json.loads(json.dumps(DESIRED))
    obj["metadata"].update(uid="u1", resourceVersion="7", generation=1, labels={"app": "web", "other": "x"},
                           managedFields=[{"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": FIELDS}])
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container.update(terminationMessagePath="/dev/termination-log", imagePullPolicy="IfNotPresent")
    container["ports"][0]["protocol"] = "TCP"
    obj["spec"].update(revisionHistoryLimit=10, strategy={"type": "RollingUpdate"})
    obj["status"] = {"replicas": 2}
    for path, value in changes.items():
        target = obj
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[keys[-1]] = value
    return obj


def test_extract_takes_only_fields_our_manager_owns():
    extracted = extract(live(), FIELDS)
    assert extracted == applied_body(DESIRED)
    assert "status" not in extracted and "revisionHistoryLimit" not in extracted["spec"]


def test_noop_when_owned_fields_hold_desired_values_despite_defaults_and_foreign_fields():
    assert apply_is_noop(DESIRED, live())


def test_drift_in_an_owned_field_is_not_a_noop():
    assert not apply_is_noop(DESIRED, live(**{"spec.replicas": 5}))


def test_new_desired_field_is_not_a_noop():
    desired = json.loads(json.dumps(DESIRED))
    desired["spec"]["minReadySeconds"] = 5
    assert not apply_is_noop(desired, live())


def test_dropped_desired_field_is_not_a_noop():
    desired = json.loads(json.dumps(DESIRED))
    del desired["metadata"]["labels"]
    assert not apply_is_noop(desired, live())


def test_without_our_managed_fields_entry_it_is_never_a_noop():
    obj = live()
    obj["metadata"]["managedFields"][0]["manager"] = "kubectl"
    assert not apply_is_noop(DESIRED, obj)


def test_set_members_and_index_keys_are_extracted():
    value = {"finalizers": ["a", "b"], "args": ["x", "y"]}
    fields = {"f:finalizers": {'v:"b"': {}}, "f:args": {"i:1": {}}}
    assert extract(value, fields) == {"finalizers": ["b"], "args": ["y"]}


def test_same_object_ignores_server_bookkeeping_only():
    a = live()
    b = live(**{"metadata.resourceVersion": "8", "metadata.generation": 2})
    assert same_object(a, b)
    assert not same_object(a, live(**{"spec.replicas": 3}))


def test_string_data_is_folded_into_data():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
    assert normalize(secret)["data"] == {"password": "aHVudGVyMg=="}
    assert "stringData" not in normalize(secret)
    assert secret["stringData"] == {"password": "hunter2"}  # the input is left alone


def test_secret_values_are_redacted_and_changes_marked():
    before = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "MQ==", "b": "Mg=="}}
    after = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "MQ==", "b": "Mw=="}}
    shown = for_display(after, before)
    assert shown["data"] == {"a": REDACTED, "b": REDACTED_CHANGED}
    assert "Mw==" not in json.dumps(shown) and "MQ==" not in json.dumps(shown)
    assert for_display(before)["data"] == {"a": REDACTED, "b": REDACTED}


def test_drift_of_asks_the_server_only_when_owned_fields_differ():
    calls = []

    def dry_run(result):
        def run():
            calls.append(result)
            return result
        return run

    assert drift_of(DESIRED, live(), dry_run(None)) is None
    assert calls == [], "a no-op must not make a request"
    # Owned fields differ only in the server's normalisation: the dry run equals live, so nothing drifted.
    normalised = live(**{"spec.replicas": 5})
    assert drift_of(DESIRED, normalised, dry_run(normalised)) is None
    changed = live(**{"spec.replicas": 2, "metadata.resourceVersion": "8"})
    changed["spec"]["minReadySeconds"] = 5
    assert drift_of(DESIRED, normalised, dry_run(changed)) is changed
    assert len(calls) == 2
    # Another manager's owned fields are not ours: the same live object drifts for it.
    assert drift_of(DESIRED, live(), dry_run(changed), manager="someone-else") is changed

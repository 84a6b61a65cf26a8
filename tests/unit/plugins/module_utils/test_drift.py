import json

from ansible_collections.gitops.federation.plugins.module_utils.apply.drift import (
    REDACTED, REDACTED_CHANGED, applied_body, apply_is_noop, drift_of, extract, for_display, normalize, same_object)
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import FIELD_MANAGER

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


def with_resources(obj, container_resources):
    obj = json.loads(json.dumps(obj))
    obj["spec"]["template"]["spec"]["containers"][0]["resources"] = container_resources
    return obj


RESOURCE_FIELDS = json.loads(json.dumps(FIELDS))
RESOURCE_FIELDS["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']["f:resources"] = {
    "f:limits": {"f:cpu": {}, "f:memory": {}}, "f:requests": {"f:cpu": {}}}


def live_with_resources(resources):
    obj = with_resources(live(), resources)
    obj["metadata"]["managedFields"][0]["fieldsV1"] = RESOURCE_FIELDS
    return obj


def test_quantities_the_server_normalises_are_not_drift():
    desired = with_resources(DESIRED, {"limits": {"cpu": 0.5, "memory": "1Gi"}, "requests": {"cpu": "100m"}})
    stored = live_with_resources({"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "100m"}})
    assert apply_is_noop(desired, stored)
    desired = with_resources(DESIRED, {"limits": {"cpu": 1, "memory": "1024Mi"}, "requests": {"cpu": "1e-1"}})
    assert apply_is_noop(desired, live_with_resources({"limits": {"cpu": "1", "memory": "1Gi"},
                                                       "requests": {"cpu": "100m"}}))


def test_a_changed_quantity_is_drift():
    desired = with_resources(DESIRED, {"limits": {"cpu": 0.6, "memory": "1Gi"}, "requests": {"cpu": "100m"}})
    assert not apply_is_noop(desired, live_with_resources({"limits": {"cpu": "500m", "memory": "1Gi"},
                                                           "requests": {"cpu": "100m"}}))


def test_quantity_equality_applies_only_to_quantity_fields_of_builtin_kinds():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"cpu": "0.5"}}
    stored = dict(cm, metadata={"name": "c", "managedFields": [
        {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": {"f:data": {"f:cpu": {}}}}]}, data={"cpu": "500m"})
    assert not apply_is_noop(cm, stored)
    custom = with_resources(dict(DESIRED, apiVersion="example.com/v1"), {"limits": {"cpu": 0.5}})
    custom_live = live_with_resources({"limits": {"cpu": "500m"}})
    custom_live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][
        'k:{"name":"web"}']["f:resources"] = {"f:limits": {"f:cpu": {}}}
    assert not apply_is_noop(custom, custom_live)


def test_status_never_counts():
    desired = json.loads(json.dumps(DESIRED))
    desired["status"] = {}
    assert apply_is_noop(desired, live(**{"status": {"replicas": 9}}))


def test_after_a_dry_run_only_what_we_own_counts():
    """A status or another manager's field that changed between the read and the dry run is not drift."""
    before = live(**{"spec.replicas": 5})
    after = live(**{"spec.replicas": 5, "status": {"replicas": 5, "readyReplicas": 5}})
    after["spec"]["paused"] = True  # someone else's field
    assert drift_of(DESIRED, before, lambda: after) is None
    mine = live(**{"spec.replicas": 2})
    assert drift_of(DESIRED, before, lambda: mine) is mine


def test_parse_quantity():
    from ansible_collections.gitops.federation.plugins.module_utils.apply.drift import parse_quantity
    assert parse_quantity("500m") == parse_quantity(0.5) == parse_quantity("0.5")
    assert parse_quantity("1Gi") == parse_quantity("1024Mi") == parse_quantity(2 ** 30)
    assert parse_quantity("1e3") == parse_quantity("1k") == parse_quantity(1000)
    assert parse_quantity("1E") == 10 ** 18
    assert parse_quantity("abc") is None and parse_quantity(True) is None and parse_quantity("1 Gi") is None

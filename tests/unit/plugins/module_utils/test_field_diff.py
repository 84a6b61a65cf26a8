import copy

from ansible_collections.gitops.federation.plugins.module_utils.apply.field_diff import field_changes
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import FIELD_MANAGER

OURS = {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
    'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}


def deployment(replicas=1, image="app:1", managers=None):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "team", "resourceVersion": "9",
                     "managedFields": managers if managers is not None else [
                         {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": OURS}]},
        "spec": {"replicas": replicas, "paused": False,
                 "template": {"spec": {"containers": [{"name": "app", "image": image, "imagePullPolicy": "Always"}]}}},
        "status": {"replicas": replicas},
    }


def test_only_owned_fields_that_differ_are_listed_with_their_paths():
    live, after = deployment(), deployment(image="app:2")
    live["spec"]["paused"] = True  # not ours: never listed
    assert field_changes(live, after) == [dict(path="spec.template.spec.containers[name=app].image", before="app:1",
                                               after="app:2", managers=[])]


def test_a_hand_edit_names_the_manager_that_owns_the_field_now():
    edited = {"f:spec": {"f:replicas": {}}}
    ours = copy.deepcopy(OURS)
    del ours["f:spec"]["f:replicas"]  # an Update takes the field from the applier
    live = deployment(replicas=5, managers=[{"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": ours},
                                            {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": edited}])
    changes = field_changes(live, deployment(replicas=1))
    assert changes == [dict(path="spec.replicas", before=5, after=1, managers=["kubectl-edit (Update)"])]


def test_secret_values_are_redacted_but_the_changed_key_is_named():
    fields = {"f:data": {"f:password": {}, "f:user": {}}}

    def secret(password):
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "s", "managedFields": [{"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": fields}]},
            "data": {"password": password, "user": "YWRtaW4="}}
    changes = field_changes(secret("b2xk"), secret("bmV3"))
    assert [c["path"] for c in changes] == ["data.password"]
    assert "b2xk" not in repr(changes) and "bmV3" not in repr(changes)
    assert changes[0]["before"] == "<redacted>" and changes[0]["after"] == "<redacted: changed>"


def test_a_field_we_stop_setting_shows_as_removed():
    ours_before = {"f:data": {"f:a": {}, "f:b": {}}}
    ours_after = {"f:data": {"f:a": {}}}

    def cm(data, fields):
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "c", "managedFields": [{"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": fields}]},
            "data": data}
    changes = field_changes(cm({"a": "1", "b": "2"}, ours_before), cm({"a": "1"}, ours_after))
    assert changes == [dict(path="data.b", before="2", after=None, managers=[])]

"""Unit tests of overrides: RFC 6902 add/replace/remove on RFC 6901 paths, template and target overrides."""

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.overrides import (
    apply_object_overrides,
    apply_operation,
    apply_template_overrides,
    normalize_overrides,
    parse_pointer,
    target_operations,
)


def deployment(name="web", replicas=1):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}


def test_pointer_unescapes_tilde_and_slash():
    assert parse_pointer("/metadata/annotations/example.com~1team") == ["metadata", "annotations", "example.com/team"]
    assert parse_pointer("/a~0b/~01") == ["a~b", "~1"]
    assert parse_pointer("/") == [""]


@pytest.mark.parametrize("path", ["spec/x", "", None, "/a~2b", "/a~"])
def test_pointer_rejects_invalid_paths(path):
    with pytest.raises(FederationError):
        parse_pointer(path, "ctx")


def test_add_replace_remove_on_objects():
    doc = {"spec": {"a": 1}}
    apply_operation(doc, "add", "/spec/b", {"c": [1]})
    apply_operation(doc, "replace", "/spec/a", 2)
    apply_operation(doc, "add", "/spec/a", 3)  # add replaces an existing key (RFC 6902)
    apply_operation(doc, "remove", "/spec/b/c")
    assert doc == {"spec": {"a": 3, "b": {}}}


def test_escaped_keys_are_patched():
    doc = {"metadata": {"annotations": {}}}
    apply_operation(doc, "add", "/metadata/annotations/example.com~1owner", "team-a")
    assert doc["metadata"]["annotations"] == {"example.com/owner": "team-a"}
    apply_operation(doc, "remove", "/metadata/annotations/example.com~1owner")
    assert doc["metadata"]["annotations"] == {}


def test_lists_insert_append_replace_remove():
    doc = {"items": ["a", "c"]}
    apply_operation(doc, "add", "/items/1", "b")
    apply_operation(doc, "add", "/items/-", "d")
    apply_operation(doc, "add", "/items/4", "e")  # index == length appends
    apply_operation(doc, "replace", "/items/0", "A")
    apply_operation(doc, "remove", "/items/2")
    assert doc == {"items": ["A", "b", "d", "e"]}


def test_values_are_copied_not_shared():
    value = {"k": ["v"]}
    doc = {}
    apply_operation(doc, "add", "/x", value)
    value["k"].append("changed")
    assert doc == {"x": {"k": ["v"]}}


@pytest.mark.parametrize("op,path,message", [
    ("replace", "/spec/missing", "path /spec/missing does not exist: no key 'missing' at /spec (use op add"),
    ("remove", "/spec/missing", "path /spec/missing does not exist: no key 'missing' at /spec"),
    ("add", "/spec/postBuild/substitute/X", "no key 'postBuild' at /spec (add the parent object first)"),
    ("replace", "/items/5", "index 5 is out of range of the list at /items (2 items)"),
    ("add", "/items/3", "index 3 is out of range"),
    ("replace", "/items/-", "- (end of list) works with op add only"),
    ("replace", "/items/first", "'first' is not an index of the list at /items"),
    ("replace", "/items/01", "'01' is not an index"),
    ("add", "/spec/a/b", "/spec/a is a int, not an object or a list"),
])
def test_missing_paths_are_errors_naming_the_override_and_path(op, path, message):
    doc = {"spec": {"a": 1}, "items": [1, 2]}
    with pytest.raises(FederationError) as err:
        apply_operation(doc, op, path, "v", "overrides[clusterName=attached-1].clusterOverrides[0]")
    assert "overrides[clusterName=attached-1].clusterOverrides[0]" in err.value.msg
    assert message in err.value.msg
    assert doc == {"spec": {"a": 1}, "items": [1, 2]} or op == "add"


def test_normalize_defaults_op_to_replace_and_validates():
    normalized = normalize_overrides([{"clusterName": "a", "clusterOverrides": [{"path": "/spec/path", "value": "x"}]}])
    assert normalized == [{"clusterName": "a", "clusterOverrides": [{"op": "replace", "path": "/spec/path", "value": "x"}]}]
    with pytest.raises(FederationError, match=r"clusterOverrides\[0\] \(add /x\): value is required for op add"):
        normalize_overrides([{"clusterName": "a", "clusterOverrides": [{"op": "add", "path": "/x"}]}])
    with pytest.raises(FederationError, match="op 'move' is not one of"):
        normalize_overrides([{"clusterName": "a", "clusterOverrides": [{"op": "move", "path": "/x"}]}])
    with pytest.raises(FederationError, match="cluster a has two override entries"):
        normalize_overrides([{"clusterName": "a", "clusterOverrides": [{"op": "remove", "path": "/x"}]}] * 2)
    with pytest.raises(FederationError, match="clusterName is required"):
        normalize_overrides([{"clusterOverrides": []}])
    with pytest.raises(FederationError, match="target needs kind and name"):
        normalize_overrides([{"clusterName": "a", "clusterOverrides": [
            {"op": "remove", "path": "/x", "target": {"kind": "Deployment"}}]}])


OVERRIDES = normalize_overrides([
    {"clusterName": "attached-1", "clusterOverrides": [
        {"path": "/spec/path", "value": "overlays/eu"},
        {"op": "add", "path": "/spec/postBuild/substitute/REPLICAS", "value": "3"},
        {"path": "/spec/replicas", "value": 3, "target": {"kind": "Deployment", "name": "web"}},
    ]},
    {"clusterName": "attached-2", "clusterOverrides": [
        {"op": "remove", "path": "/spec/postBuild"},
    ]},
])
TEMPLATE = {"spec": {"path": "overlays/prod", "postBuild": {"substitute": {"REPLICAS": "2"}}}}


def test_template_overrides_apply_per_cluster_and_leave_the_template_alone():
    assert apply_template_overrides(TEMPLATE, OVERRIDES, "attached-1") == {
        "spec": {"path": "overlays/eu", "postBuild": {"substitute": {"REPLICAS": "3"}}}}
    assert apply_template_overrides(TEMPLATE, OVERRIDES, "attached-2") == {"spec": {"path": "overlays/prod"}}
    assert apply_template_overrides(TEMPLATE, OVERRIDES, "attached-3") == TEMPLATE
    assert TEMPLATE == {"spec": {"path": "overlays/prod", "postBuild": {"substitute": {"REPLICAS": "2"}}}}


def test_template_override_error_names_object_cluster_override_and_path():
    with pytest.raises(FederationError) as err:
        apply_template_overrides({"spec": {}}, OVERRIDES, "attached-1", "FederatedKustomization team-a/web overrides")
    assert err.value.msg.startswith("FederatedKustomization team-a/web overrides[clusterName=attached-1]"
                                    ".clusterOverrides[0] (replace /spec/path): path /spec/path does not exist")


def test_target_overrides_patch_only_the_selected_objects():
    ops = target_operations(OVERRIDES, "attached-1")
    assert ops == [{"op": "replace", "path": "/spec/replicas", "value": 3, "target": {"kind": "Deployment", "name": "web"}}]
    objects = [deployment("web"), deployment("api"), {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}]
    patched = apply_object_overrides(objects, ops, "attached-1")
    assert [o.get("spec", {}).get("replicas") for o in patched] == [3, 1, None]
    assert objects[0]["spec"]["replicas"] == 1  # inputs untouched
    assert target_operations(OVERRIDES, "attached-2") == []


def test_target_group_and_namespace_narrow_the_selection():
    objects = [deployment("web"), {"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "web"},
                                   "spec": {"replicas": 1}}]
    patched = apply_object_overrides(objects, [{"op": "replace", "path": "/spec/replicas", "value": 5,
                                                "target": {"group": "apps", "kind": "Deployment", "name": "web"}}])
    assert [o["spec"]["replicas"] for o in patched] == [5, 1]
    core = apply_object_overrides([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}],
                                  [{"op": "add", "path": "/data/k", "value": "v",
                                    "target": {"group": "", "kind": "ConfigMap", "name": "c"}}])
    assert core[0]["data"] == {"k": "v"}


def test_target_that_matches_nothing_is_an_error():
    with pytest.raises(FederationError) as err:
        apply_object_overrides([deployment("web")], [{"op": "replace", "path": "/spec/replicas", "value": 2,
                                                      "target": {"kind": "Deployment", "name": "wbe"}}], "attached-1")
    assert "overrides[clusterName=attached-1][0] (replace /spec/replicas on Deployment wbe)" in err.value.msg
    assert "matches no rendered object" in err.value.msg


def test_target_override_missing_path_names_the_cluster():
    with pytest.raises(FederationError, match=r"attached-1.*path /spec/strategy/type does not exist"):
        apply_object_overrides([deployment("web")], [{"op": "replace", "path": "/spec/strategy/type", "value": "x",
                                                      "target": {"kind": "Deployment", "name": "web"}}], "attached-1")


def test_failed_operation_never_quotes_the_document():
    # Behaviour is otherwise unchanged by the swap to jsonpatch/jsonpointer (the tests above ran against the
    # hand-written walker); jsonpatch's own messages quote the document, a Secret's values among them.
    secret = {"kind": "Secret", "data": {"password": "aHVudGVyMg=="}}
    for op, path in (("replace", "/data/token"), ("remove", "/stringData/x"), ("add", "/data/password/x")):
        with pytest.raises(FederationError) as err:
            apply_operation(secret, op, path, "v", "FederatedSecret ns/creds overrides[clusterName=a]")
        assert "aHVudGVyMg==" not in err.value.msg and "FederatedSecret ns/creds" in err.value.msg

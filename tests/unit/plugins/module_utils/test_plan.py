import pytest

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import Discovery, ResourceType
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import OWNER_ANNOTATION, OWNER_LABEL
from ansible_collections.gitops.federation.plugins.module_utils.apply.plan import plan

DISCOVERY = Discovery([
    ResourceType("", "v1", "ConfigMap", "configmaps", True),
    ResourceType("", "v1", "Namespace", "namespaces", False),
    ResourceType("apps", "v1", "Deployment", "deployments", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False),
], {"": "v1", "apps": "v1"})


def cm(name, **metadata):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(name=name, **metadata)}


def problems_of(objects, **kwargs):
    with pytest.raises(FederationError) as caught:
        plan(objects, DISCOVERY, "team", "gitops/team/app", **kwargs)
    assert "nothing was applied" in caught.value.msg
    return caught.value.details["problems"]


def test_namespace_is_forced_and_ownership_stamped():
    [planned] = plan([cm("a")], DISCOVERY, "team", "gitops/team/app")
    assert planned.obj["metadata"]["namespace"] == "team"
    assert planned.obj["metadata"]["labels"][OWNER_LABEL] == "gitops.team.app"
    assert planned.obj["metadata"]["annotations"][OWNER_ANNOTATION] == "gitops/team/app"


def test_every_problem_is_reported_with_its_object():
    problems = problems_of([
        cm("ok"),
        {"kind": "ConfigMap", "metadata": {"name": "no-version"}},
        cm("elsewhere", namespace="other"),
        {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "old"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
        cm("ok"),
        "not a mapping",
    ])
    text = "\n".join(problems)
    assert len(problems) == 7
    assert "object #2 (ConfigMap no-version): missing apiVersion" in text
    assert "object #3 (ConfigMap elsewhere): namespace 'other' is not the project namespace 'team'" in text
    assert "unknown kind example.test/v1 Widget" in text
    assert "apps/v1beta1 is not served by the cluster (served versions of Deployment: v1)" in text
    assert "Namespace is cluster-scoped" in text
    assert "object #7 (ConfigMap ok): duplicate of object #1" in text
    assert "object #8: not a mapping" in text


def test_foreign_namespace_can_be_rewritten():
    [planned] = plan([cm("a", namespace="other")], DISCOVERY, "team", "o", foreign_namespace="rewrite")
    assert planned.obj["metadata"]["namespace"] == "team"


def test_cluster_scoped_allowed_loses_namespace():
    [planned] = plan([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "namespace": "team"}}],
                     DISCOVERY, "team", "o", allow_cluster_scoped=True)
    assert "namespace" not in planned.obj["metadata"]


def test_kind_defined_by_a_crd_in_the_bundle_is_accepted_and_ordered_after_it():
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.test"},
           "spec": {"group": "example.test", "scope": "Namespaced",
                    "names": {"kind": "Widget", "plural": "widgets"}, "versions": [{"name": "v1", "served": True}]}}
    widget = {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w"}}
    planned = plan([widget, cm("c"), crd], DISCOVERY, "team", "o", allow_cluster_scoped=True)
    assert [p.ref.kind for p in planned] == ["CustomResourceDefinition", "ConfigMap", "Widget"]
    assert planned[2].resource is None and planned[2].obj["metadata"]["namespace"] == "team"
    problems = problems_of([crd, dict(widget, apiVersion="example.test/v2")], allow_cluster_scoped=True)
    assert "version v2 of Widget is not served by its CustomResourceDefinition (served: v1)" in problems[0]


def test_apply_order_puts_roles_before_bindings_before_workloads():
    objects = [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}},
               {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b"}},
               {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}}]
    assert [p.ref.kind for p in plan(objects, DISCOVERY, "team", "o")] == ["Role", "RoleBinding", "Deployment"]


def test_list_kinds_are_expanded():
    planned = plan([{"apiVersion": "v1", "kind": "List", "items": [cm("a"), cm("b")]}], DISCOVERY, "team", "o")
    assert [p.ref.name for p in planned] == ["a", "b"]

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import Discovery, ResourceType
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import ObjectRef
from ansible_collections.gitops.federation.plugins.module_utils.apply.plan import plan
from ansible_collections.gitops.federation.plugins.module_utils.apply.source_policy import (
    ALL, SourcePolicy, effective_policy, policies_from_projects)

DISCOVERY = Discovery([
    ResourceType("", "v1", "ConfigMap", "configmaps", True),
    ResourceType("", "v1", "Namespace", "namespaces", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False),
], {"": "v1"})

CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "widgets.example.test"},
       "spec": {"group": "example.test", "scope": "Cluster", "names": {"kind": "Widget", "plural": "widgets"},
                "versions": [{"name": "v1", "served": True, "storage": True}]}}
WIDGET = {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w"}}
CLUSTER_ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}}
ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "r", "namespace": "kube-system"}}
PLATFORM = SourcePolicy.from_inventory({"name": "addons", "platform": {
    "cluster_scoped_kinds": ["CustomResourceDefinition", "ClusterRole.rbac.authorization.k8s.io", "Widget"],
    "namespaces": ["kube-system"]}}, "ops")


def test_the_default_is_a_tenant_source():
    policy = SourcePolicy.from_inventory({"name": "app"}, "team")
    assert policy.scope == "tenant" and not policy.is_platform
    assert not policy.allows_kind("ClusterRole", "rbac.authorization.k8s.io")
    assert policy.allows_namespace("team", "team") and not policy.allows_namespace("kube-system", "team")
    assert policy.impersonated_user is None
    assert SourcePolicy.from_plan(None).to_plan() == policy.to_plan()


def test_a_platform_policy_names_kinds_by_kind_or_kind_and_group():
    assert PLATFORM.scope == "platform"
    assert PLATFORM.allows_kind("CustomResourceDefinition", "apiextensions.k8s.io")
    assert PLATFORM.allows_kind("ClusterRole", "rbac.authorization.k8s.io")
    assert not PLATFORM.allows_kind("ClusterRole", "other.example")
    assert not PLATFORM.allows_kind("ClusterRoleBinding", "rbac.authorization.k8s.io")
    assert PLATFORM.allows_namespace("kube-system", "ops") and not PLATFORM.allows_namespace("default", "ops")


@pytest.mark.parametrize("value", ["all", "All", "*", ["*"]])
def test_all_kinds_or_namespaces(value):
    policy = SourcePolicy.from_inventory({"name": "x", "platform": {"cluster_scoped_kinds": value,
                                                                    "namespaces": value}}, "ops")
    assert policy.kinds == ALL and policy.namespaces == ALL
    assert policy.allows_kind("Anything") and policy.allows_namespace("anywhere", "ops")


def test_a_namespace_named_all_in_a_list_is_that_namespace():
    policy = SourcePolicy.from_inventory({"name": "x", "platform": {"namespaces": ["all"]}}, "ops")
    assert policy.namespaces == ("all",) and not policy.allows_namespace("other", "ops")


@pytest.mark.parametrize("entry, message", [
    ({"platform": "yes"}, "platform must be a dict"),
    ({"platform": {"cluster_scoped_kinds": "ClusterRole"}}, "platform.cluster_scoped_kinds must be a list"),
    ({"platform": {"namespaces": [""]}}, "platform.namespaces must hold non-empty strings"),
    ({"platform": {"prune_crds": "sure"}}, "platform.prune_crds must be true or false"),
    ({"platform": {"kinds": ["ClusterRole"]}}, "unknown platform option kinds"),
    ({"service_account_namespace": "ops"}, "service_account_namespace is set without service_account"),
])
def test_invalid_policies_name_the_source_and_option(entry, message):
    with pytest.raises(FederationError) as caught:
        SourcePolicy.from_inventory(dict(entry, name="addons"), "ops")
    assert message in caught.value.msg and "gitops_projects source ops/addons" in caught.value.msg


def test_crds_are_pruned_only_when_the_policy_says_so():
    crd = ObjectRef("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.test")
    role = ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "reader")
    assert not PLATFORM.may_prune(crd) and PLATFORM.may_prune(role)
    allowing = SourcePolicy.from_inventory({"name": "x", "platform": {"cluster_scoped_kinds": "all",
                                                                      "prune_crds": True}}, "ops")
    assert allowing.may_prune(crd)


def test_the_service_account_is_in_the_project_namespace_unless_named():
    own = SourcePolicy.from_inventory({"name": "x", "service_account": "deployer"}, "team")
    assert own.impersonated_user == "system:serviceaccount:team:deployer"
    assert own.scope == "tenant"  # a ServiceAccount alone does not widen anything
    other = SourcePolicy.from_inventory({"name": "x", "service_account": "deployer",
                                         "service_account_namespace": "gitops-system"}, "team")
    assert other.impersonated_user == "system:serviceaccount:gitops-system:deployer"
    assert SourcePolicy.from_plan(other.to_plan()).impersonated_user == other.impersonated_user


def test_the_plan_and_template_round_trip():
    assert SourcePolicy.from_plan(PLATFORM.to_plan()).to_plan() == PLATFORM.to_plan()
    claim = SourcePolicy.from_template(PLATFORM.to_template(), "ops")
    assert PLATFORM.claim_problems(claim) == []
    assert SourcePolicy().to_template() == {}


def test_a_wider_claim_is_ignored_and_reported():
    claim = SourcePolicy.from_template({"platform": {"clusterScopedKinds": ["*"], "namespaces": ["kube-system", "x"],
                                                     "pruneCRDs": True}, "serviceAccountName": "admin"}, "ops")
    problems = PLATFORM.claim_problems(claim)
    assert problems == ["cluster-scoped kinds all", "namespaces x", "pruning CRDs", "ServiceAccount ops/admin"]
    policy, note = effective_policy("ops/addons", {"ops/addons": PLATFORM}, claim)
    assert policy is PLATFORM
    assert "claims cluster-scoped kinds all" in note and "uses the operator's policy" in note


def test_a_tenant_cannot_widen_its_own_policy_by_editing_the_object():
    claim = SourcePolicy.from_template({"platform": {"clusterScopedKinds": ["ClusterRole"]}}, "team")
    policy, note = effective_policy("team/app", {}, claim)
    assert policy.scope == "tenant" and not policy.allows_kind("ClusterRole")
    assert "FederatedKustomization team/app claims cluster-scoped kinds ClusterRole" in note


def test_a_narrower_or_equal_claim_is_no_problem():
    claim = SourcePolicy.from_template({"platform": {"clusterScopedKinds": [
        "CustomResourceDefinition.apiextensions.k8s.io", "ClusterRole.rbac.authorization.k8s.io"]}}, "ops")
    assert effective_policy("ops/addons", {"ops/addons": PLATFORM}, claim) == (PLATFORM, None)
    # ClusterRole of any group is more than ClusterRole.rbac.authorization.k8s.io
    wider = SourcePolicy.from_template({"platform": {"clusterScopedKinds": ["ClusterRole"]}}, "ops")
    assert PLATFORM.claim_problems(wider) == ["cluster-scoped kinds ClusterRole"]
    assert effective_policy("team/app", {}, SourcePolicy.from_template({}, "team"))[1] is None


def test_an_unreadable_claim_counts_as_the_widest():
    claim = SourcePolicy.from_template({"platform": {"clusterScopedKinds": "ClusterRole"}}, "ops")
    assert claim.kinds == ALL


def test_policies_from_projects():
    policies = policies_from_projects([{"namespace": "ops", "sources": [
        {"name": "addons", "platform": {"cluster_scoped_kinds": "all"}}, {"name": "app"}]}])
    assert policies["ops/addons"].scope == "platform" and policies["ops/app"].scope == "tenant"


def test_a_tenant_plan_refuses_each_cluster_scoped_object_and_foreign_namespace():
    with pytest.raises(FederationError) as caught:
        plan([CRD, WIDGET, CLUSTER_ROLE, ROLE], DISCOVERY, "team", "gitops/team/app", policy=SourcePolicy())
    problems = caught.value.details["problems"]
    assert len(problems) == 4, problems
    assert "CustomResourceDefinition widgets.example.test" in problems[0] and "cluster-scoped" in problems[0]
    assert "Widget w" in problems[1] and "cluster-scoped" in problems[1]
    assert "ClusterRole reader" in problems[2] and "platform.cluster_scoped_kinds" in problems[2]
    assert "Role r" in problems[3] and "'kube-system'" in problems[3] and "platform.namespaces" in problems[3]


def test_a_platform_plan_keeps_allowed_namespaces_and_cluster_scoped_objects():
    planned = plan([CRD, WIDGET, CLUSTER_ROLE, ROLE, {"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": "c"}}],
                   DISCOVERY, "ops", "gitops/ops/addons", policy=PLATFORM)
    where = dict((p.ref.kind, p.ref.namespace) for p in planned)
    assert where == {"CustomResourceDefinition": "", "Widget": "", "ClusterRole": "", "Role": "kube-system",
                     "ConfigMap": "ops"}
    with pytest.raises(FederationError) as caught:
        plan([dict(ROLE, metadata={"name": "r", "namespace": "default"})], DISCOVERY, "ops", "o", policy=PLATFORM)
    assert "besides kube-system" in caught.value.msg

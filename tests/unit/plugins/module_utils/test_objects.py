from ansible_collections.gitops.federation.plugins.module_utils.apply.inventory import inventory_name
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import (
    ObjectRef, is_owned_by, owner_label_value, stamp_owner)


def test_owner_label_is_readable_when_possible_and_a_digest_otherwise():
    assert owner_label_value("gitops/team-a/podinfo") == "gitops.team-a.podinfo"
    long_owner = "gitops/" + "x" * 80
    value = owner_label_value(long_owner)
    assert value.startswith("sha256-") and len(value) <= 63


def test_ownership_needs_label_and_exact_annotation():
    obj = stamp_owner({"metadata": {"name": "a", "labels": {"keep": "me"}}}, "gitops/a.b/c")
    assert is_owned_by(obj, "gitops/a.b/c")
    assert obj["metadata"]["labels"]["keep"] == "me"
    # a.b/c and a/b.c share a readable label value; the annotation tells them apart.
    assert not is_owned_by(obj, "gitops/a/b.c")
    del obj["metadata"]["labels"]["gitops.federation/owner"]
    assert not is_owned_by(obj, "gitops/a.b/c")


def test_refs_print_like_kubectl_subjects():
    assert str(ObjectRef("apps", "Deployment", "team", "web")) == "Deployment.apps/team/web"
    assert str(ObjectRef("", "Namespace", "", "team")) == "Namespace/team"


def test_inventory_names_are_valid_and_distinct():
    a, b = inventory_name("gitops/a.b/c"), inventory_name("gitops/a/b.c")
    assert a != b
    assert a.startswith("gitops-inventory-gitops.a.b.c-")
    assert len(inventory_name("x/" * 200)) <= 253

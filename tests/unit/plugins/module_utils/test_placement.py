"""Unit tests of placement: named clusters, label selectors, their union, and unknown names."""

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import (
    InventoryCluster,
    parse_inventory_clusters,
    placement_from_options,
    resolve_placement,
    selector_matches,
)

INVENTORY = [
    InventoryCluster("attached-1", {"env": "prod", "region": "eu"}),
    InventoryCluster("attached-2", {"env": "staging", "region": "eu"}),
    InventoryCluster("attached-3", {"env": "prod", "region": "us"}),
]


def test_named_clusters_are_placed_in_inventory_order_and_unknown_names_reported():
    placement = resolve_placement({"clusters": [{"name": "attached-3"}, {"name": "ghost"}, {"name": "attached-1"}]},
                                  INVENTORY)
    assert placement.placed == ["attached-1", "attached-3"]
    assert placement.unknown == ["ghost"]


def test_match_labels_selects_every_matching_cluster():
    assert resolve_placement({"clusterSelector": {"matchLabels": {"env": "prod"}}}, INVENTORY).placed == [
        "attached-1", "attached-3"]
    assert resolve_placement({"clusterSelector": {"matchLabels": {"env": "prod", "region": "us"}}},
                             INVENTORY).placed == ["attached-3"]
    assert resolve_placement({"clusterSelector": {"matchLabels": {"env": "qa"}}}, INVENTORY).placed == []


def test_empty_selector_selects_all_and_no_placement_selects_none():
    assert resolve_placement({"clusterSelector": {}}, INVENTORY).placed == ["attached-1", "attached-2", "attached-3"]
    assert resolve_placement({}, INVENTORY).placed == []
    assert resolve_placement(None, INVENTORY).placed == []
    assert resolve_placement({"clusters": []}, INVENTORY).placed == []


def test_names_and_selector_are_a_union():
    placement = resolve_placement({"clusters": [{"name": "attached-2"}],
                                   "clusterSelector": {"matchLabels": {"region": "us"}}}, INVENTORY)
    assert placement.placed == ["attached-2", "attached-3"]
    assert placement.unknown == []


def test_match_expressions():
    labels = {"env": "prod", "tier": "gold"}
    assert selector_matches({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "qa"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["qa"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches({"matchLabels": {"env": "prod"},
                                 "matchExpressions": [{"key": "tier", "operator": "In", "values": ["silver"]}]}, labels)
    with pytest.raises(FederationError, match="operator 'Near'"):
        selector_matches({"matchExpressions": [{"key": "env", "operator": "Near"}]}, labels)
    with pytest.raises(FederationError, match="needs values"):
        selector_matches({"matchExpressions": [{"key": "env", "operator": "In"}]}, labels)


def test_label_values_compare_as_strings():
    assert selector_matches({"matchLabels": {"replicas": 3}}, {"replicas": "3"})


def test_inventory_clusters_accept_names_dicts_and_pairs():
    clusters = parse_inventory_clusters(["a", {"name": "b", "labels": {"env": "prod"}}, ["c", {"zone": 1}], ["d", None]])
    assert [(c.name, c.labels) for c in clusters] == [("a", {}), ("b", {"env": "prod"}), ("c", {"zone": "1"}), ("d", {})]


def test_inventory_clusters_reject_bad_entries_with_their_position():
    with pytest.raises(FederationError, match=r"clusters\[1\]: cluster a is listed twice"):
        parse_inventory_clusters(["a", "a"])
    with pytest.raises(FederationError, match=r"clusters\[0\] \(a\): labels must be a dictionary"):
        parse_inventory_clusters([{"name": "a", "labels": ["x"]}])
    with pytest.raises(FederationError, match=r"clusters\[0\]: the cluster name is missing"):
        parse_inventory_clusters([{"labels": {}}])


def test_placement_from_options():
    assert placement_from_options(["a", "b"], None) == {"clusters": [{"name": "a"}, {"name": "b"}]}
    assert placement_from_options(None, {}) == {"clusterSelector": {}}
    assert placement_from_options(None, {"env": "prod"}) == {"clusterSelector": {"matchLabels": {"env": "prod"}}}
    assert placement_from_options(None, {"matchLabels": {"env": "prod"}}) == {
        "clusterSelector": {"matchLabels": {"env": "prod"}}}
    assert placement_from_options(None, None) == {}
    with pytest.raises(FederationError, match="lists a more than once"):
        placement_from_options(["a", "a"], None)

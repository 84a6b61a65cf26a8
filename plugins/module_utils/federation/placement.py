# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placement: which inventory clusters a federated object goes to.

``spec.placement`` names clusters (``clusters: [{name}]``) and/or selects them by label
(``clusterSelector`` with ``matchLabels`` and ``matchExpressions``, Kubernetes LabelSelector rules).
The object is placed on the union of both. An empty ``clusterSelector: {}`` selects every cluster;
no placement at all selects none. Names that are not inventory clusters are reported as unknown,
never silently dropped.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class InventoryCluster:
    """An attached cluster as the inventory knows it: its host name and its cluster_labels."""

    __slots__ = ("name", "labels")

    def __init__(self, name, labels=None):
        self.name = name
        self.labels = dict(labels or {})

    def __repr__(self):
        return "InventoryCluster(%s, %s)" % (self.name, self.labels)


class Placement:
    """The result of resolving a placement: placed cluster names (inventory order) and unknown names."""

    def __init__(self, placed, unknown):
        self.placed = placed
        self.unknown = unknown

    def __contains__(self, name):
        return name in self.placed

    def as_dict(self):
        return dict(placed=list(self.placed), unknown=list(self.unknown))


def parse_inventory_clusters(entries, option="clusters"):
    """Inventory clusters from a module option.

    Each entry is a name, a ``{name, labels}`` dictionary, or a ``[name, labels]`` pair (what
    ``groups['attached'] | zip(... cluster_labels ...)`` produces).
    """
    clusters, seen = [], set()
    for index, entry in enumerate(entries or []):
        where = "%s[%d]" % (option, index)
        if isinstance(entry, str):
            name, labels = entry, {}
        elif isinstance(entry, dict):
            name, labels = entry.get("name"), entry.get("labels")
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            name, labels = entry
        else:
            raise FederationError("%s: expected a cluster name, {name, labels} or [name, labels], got %r"
                                  % (where, entry))
        if not name or not isinstance(name, str):
            raise FederationError("%s: the cluster name is missing or not a string" % where)
        if labels is None:
            labels = {}
        if not isinstance(labels, dict):
            raise FederationError("%s (%s): labels must be a dictionary, got %s" % (where, name, type(labels).__name__))
        if name in seen:
            raise FederationError("%s: cluster %s is listed twice" % (where, name))
        seen.add(name)
        clusters.append(InventoryCluster(name, dict((str(k), str(v)) for k, v in labels.items())))
    return clusters


def selector_matches(selector, labels, where="clusterSelector"):
    """True when labels satisfy a LabelSelector (every matchLabels pair and every matchExpression)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != str(value):
            return False
    for index, expression in enumerate(selector.get("matchExpressions") or []):
        key, operator = expression.get("key"), expression.get("operator")
        values = [str(v) for v in expression.get("values") or []]
        if operator not in SELECTOR_OPERATORS:
            raise FederationError("%s.matchExpressions[%d]: operator %r is not one of %s"
                                  % (where, index, operator, ", ".join(SELECTOR_OPERATORS)))
        if operator in ("In", "NotIn") and not values:
            raise FederationError("%s.matchExpressions[%d]: operator %s needs values" % (where, index, operator))
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def resolve_placement(placement, clusters, where="placement"):
    """Resolve a spec.placement against inventory clusters.

    Returns a Placement: the names of the placed clusters, in inventory order, and the names listed in
    ``placement.clusters`` that are not inventory clusters.
    """
    placement = placement or {}
    by_name = dict((c.name, c) for c in clusters)
    named = []
    for index, entry in enumerate(placement.get("clusters") or []):
        name = entry.get("name") if isinstance(entry, dict) else entry
        if not name:
            raise FederationError("%s.clusters[%d]: name is required" % (where, index))
        named.append(name)
    selected = set(n for n in named if n in by_name)
    selector = placement.get("clusterSelector")
    if selector is not None:
        for cluster in clusters:
            if selector_matches(selector, cluster.labels, where + ".clusterSelector"):
                selected.add(cluster.name)
    placed = [c.name for c in clusters if c.name in selected]
    unknown = sorted(set(n for n in named if n not in by_name))
    return Placement(placed, unknown)


def placement_from_options(clusters=None, cluster_selector=None):
    """A spec.placement from module options (a list of names and a selector dictionary).

    ``cluster_selector`` is either a LabelSelector (``matchLabels``/``matchExpressions``) or, for
    brevity, a plain label dictionary taken as ``matchLabels``.
    """
    placement = {}
    if clusters is not None:
        duplicates = sorted(set(name for name in clusters if clusters.count(name) > 1))
        if duplicates:
            raise FederationError("placement clusters lists %s more than once" % ", ".join(duplicates))
        placement["clusters"] = [{"name": name} for name in clusters]
    if cluster_selector is not None:
        if set(cluster_selector) <= set(["matchLabels", "matchExpressions"]):
            placement["clusterSelector"] = dict(cluster_selector)
        else:
            placement["clusterSelector"] = {"matchLabels": dict((k, str(v)) for k, v in cluster_selector.items())}
    return placement

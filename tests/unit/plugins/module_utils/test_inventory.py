"""The sharded inventory (module_utils/apply/inventory.py) against an in-memory ConfigMap store.

The store stands in for the API only to count and inspect requests; cluster behaviour (1 MiB limit, real LIST)
is proven in tests/integration/test_inventory_shards.py.
"""

import json
from collections import Counter

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.apply import inventory as inventory_module
from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.inventory import (
    INVENTORY_LABEL, Inventory, LegacyOwner, inventory_name, shard_name)
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import (
    OWNER_LABEL, ObjectRef, owner_label_value)

OWNER = "gitops/team-a/app"
NS = "team-a"


class _ConfigMaps:
    kind = "ConfigMap"


class _Discovery:
    def find(self, api_version, kind):
        assert (api_version, kind) == ("v1", "ConfigMap")
        return _ConfigMaps


class Store:
    """ConfigMaps by (namespace, name); requests counted by verb."""

    def __init__(self, forbid_list=False):
        self.objects = {}
        self.requests = Counter()
        self.log = []
        self.forbid_list = forbid_list

    def discovery(self):
        return _Discovery()

    def list(self, resource, namespace, selector):
        self.requests["LIST"] += 1
        if self.forbid_list:
            raise ApiError(403, "Forbidden", "configmaps is forbidden")
        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part and " in " not in part)
        owners = selector.split(" in (", 1)[1].rstrip(")").split(",")
        return [json.loads(json.dumps(o)) for o in self.objects.values()
                if all(o["metadata"]["labels"].get(k) == v for k, v in wanted.items())
                and o["metadata"]["labels"].get(OWNER_LABEL) in owners]

    def get(self, resource, name, namespace=None):
        self.requests["GET"] += 1
        found = self.objects.get((namespace, name))
        return json.loads(json.dumps(found)) if found else None

    def apply(self, resource, body, field_manager, force=False):
        self.requests["APPLY"] += 1
        self.log.append(("apply", body["metadata"]["name"]))
        self.objects[(body["metadata"]["namespace"], body["metadata"]["name"])] = json.loads(json.dumps(body))

    def delete(self, resource, name, namespace=None):
        self.requests["DELETE"] += 1
        self.log.append(("delete", name))
        return self.objects.pop((namespace, name), None) is not None

    def names(self, namespace=NS):
        return sorted(n for (ns, n) in self.objects if ns == namespace)


def refs(count, length=200, namespace=NS):
    return dict((ObjectRef("", "ConfigMap", namespace, ("cm-%05d-" % i).ljust(length, "x")), "v1")
                for i in range(count))


@pytest.fixture
def small_shards(monkeypatch):
    monkeypatch.setattr(inventory_module, "SHARD_BYTES", 4096)


def test_a_small_inventory_is_one_configmap_in_the_format_of_earlier_releases():
    store = Store()
    inventory = Inventory.read(store, OWNER, NS)
    inventory.write(store, refs(3), "abc")
    assert store.names() == [inventory_name(OWNER)]
    data = store.objects[(NS, inventory_name(OWNER))]["data"]
    assert sorted(data) == ["entries", "owner", "revision"]
    assert [e["name"][:8] for e in json.loads(data["entries"])] == ["cm-00000", "cm-00001", "cm-00002"]


def test_a_large_inventory_is_split_into_shards_read_back_as_one(small_shards):
    store = Store()
    entries = refs(60)
    Inventory.read(store, OWNER, NS).write(store, entries, "abc")
    names = store.names()
    assert len(names) > 2
    assert names[0] == inventory_name(OWNER)
    assert set(names) == set(shard_name(OWNER, i) for i in range(len(names)))
    for name in names:  # every shard within the budget and labelled so the one LIST finds it
        stored = store.objects[(NS, name)]
        assert len(stored["data"]["entries"]) <= inventory_module.SHARD_BYTES
        assert stored["metadata"]["labels"][INVENTORY_LABEL] == "true"
        assert stored["metadata"]["labels"][OWNER_LABEL] == owner_label_value(OWNER)
    assert store.objects[(NS, names[0])]["data"]["shards"] == str(len(names))

    store.requests.clear()
    again = Inventory.read(store, OWNER, NS)
    assert store.requests == Counter(LIST=1), "one read, whatever the number of shards"
    assert again.entries == entries and again.revision == "abc"
    assert again.same_as(entries, "abc")
    assert not again.same_as(entries, "def")


def test_a_write_applies_only_the_shards_that_changed_and_deletes_those_no_longer_needed(small_shards):
    store = Store()
    entries = refs(60)
    Inventory.read(store, OWNER, NS).write(store, entries, "abc")
    shards = len(store.names())
    last = sorted(entries)[-1]
    fewer = dict((ref, v) for ref, v in entries.items() if ref != last)
    store.log = []
    Inventory.read(store, OWNER, NS).write(store, fewer, "abc")
    assert store.log == [("apply", shard_name(OWNER, shards - 1))], "only the last shard changed"

    store.log = []
    Inventory.read(store, OWNER, NS).write(store, refs(2), "abc")
    assert store.names() == [inventory_name(OWNER)]
    assert store.log[0] == ("apply", inventory_name(OWNER))
    assert sorted(store.log[1:]) == sorted(("delete", shard_name(OWNER, i)) for i in range(1, shards))
    data = store.objects[(NS, inventory_name(OWNER))]["data"]
    assert "shards" not in data and len(json.loads(data["entries"])) == 2
    assert Inventory.read(store, OWNER, NS).entries == refs(2)


class Killed(Exception):
    pass


def _changes():
    """(old, new) entry sets: additions (pending writes), removals (prunes), both, with shards shifting."""
    base = refs(60, length=100)
    ordered = sorted(base)
    added = dict(base)
    added.update((ObjectRef("", "ConfigMap", NS, "cm-%05d-a" % i), "v1") for i in range(0, 60, 3))
    removed = dict((ref, v) for i, (ref, v) in enumerate(sorted(base.items())) if i % 4)
    both = dict((ref, v) for ref, v in base.items() if ref not in ordered[:15])  # the first shard shrinks...
    both.update((ObjectRef("", "ConfigMap", NS, "cm-00040-%02d" % i), "v1") for i in range(40))  # ...later ones grow
    return [(base, added), (base, removed), (base, both), (added, removed), (removed, refs(2, length=100))]


@pytest.mark.parametrize("change", range(5))
def test_a_write_killed_at_any_request_leaves_every_kept_entry_listed(small_shards, change):
    """Whatever request a run is killed at, the union of the shards lists every entry in both old and new."""
    old, new = _changes()[change]
    kept = set(old) & set(new)
    requests = 0
    while True:
        store = Store()
        Inventory.read(store, OWNER, NS).write(store, old, "abc")
        assert Inventory.read(store, OWNER, NS).entries == old
        budget = [requests]

        def die_after_budget(method):
            def request(*args, **kwargs):
                if budget[0] == 0:
                    raise Killed()
                budget[0] -= 1
                return method(*args, **kwargs)
            return request

        store.apply, store.delete = die_after_budget(store.apply), die_after_budget(store.delete)
        try:
            Inventory.read(store, OWNER, NS).write(store, new, "def")
            finished = True
        except Killed:
            finished = False
        listed = set(Inventory.read(store, OWNER, NS).entries)
        assert kept <= listed, "killed after %d writes: %d kept entries unlisted" % (requests, len(kept - listed))
        if finished:
            assert Inventory.read(store, OWNER, NS).entries == new
            break
        requests += 1
    assert requests > 1


def test_delete_removes_every_shard_head_last(small_shards):
    store = Store()
    inventory = Inventory.read(store, OWNER, NS)
    inventory.write(store, refs(60), "abc")
    store.log = []
    Inventory.read(store, OWNER, NS).delete(store)
    assert store.names() == []
    assert store.log[-1] == ("delete", inventory_name(OWNER))


def test_namespace_scoped_credentials_read_the_shards_by_name(small_shards):
    store = Store()
    entries = refs(60)
    Inventory.read(store, OWNER, NS).write(store, entries, "abc")
    shards = len(store.names())
    store.forbid_list = True
    store.requests.clear()
    inventory = Inventory.read(store, OWNER, NS)
    assert inventory.entries == entries
    assert store.requests == Counter(LIST=1, GET=shards)


def test_the_single_configmap_of_earlier_releases_is_read_and_kept_as_it_is():
    store = Store()
    entries = refs(3)
    serialised = [dict(group=r.group, kind=r.kind, namespace=r.namespace, name=r.name, apiVersion=v)
                  for r, v in sorted(entries.items())]
    store.objects[(NS, inventory_name(OWNER))] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": inventory_name(OWNER), "namespace": NS,
                     "labels": {INVENTORY_LABEL: "true", OWNER_LABEL: owner_label_value(OWNER)}},
        "data": {"owner": OWNER, "revision": "abc", "entries": json.dumps(serialised, indent=1)}}
    inventory = Inventory.read(store, OWNER, NS)
    assert inventory.entries == entries and inventory.revision == "abc"
    assert inventory.same_as(entries, "abc"), "a no-op sync must not rewrite an inventory of an earlier release"


def test_shards_of_an_inventory_in_another_namespace_are_merged_and_removed(small_shards):
    store = Store()
    entries = refs(60, namespace="old")
    Inventory.read(store, OWNER, "old").write(store, entries, "abc")
    assert len(store.names("old")) > 1
    moved = Inventory.read(store, OWNER, NS)
    assert moved.entries == entries and not moved.at_home
    moved.write(store, entries, "abc")
    assert store.names("old") == []
    assert Inventory.read(store, OWNER, NS).entries == entries


def test_legacy_inventory_entries_are_claimed_through_the_shards(small_shards):
    store = Store()
    legacy = "gitops/team-a"
    entries = refs(60)
    Inventory.read(store, legacy, NS).write(store, entries, "abc")
    wanted = set(list(sorted(entries))[:10])
    inventory = Inventory.read(store, OWNER, NS, [LegacyOwner(legacy, lambda ref: ref in wanted)])
    assert set(inventory.entries) == wanted
    inventory.write(store, inventory.entries, "abc")
    rest = Inventory.read(store, legacy, NS)
    assert set(rest.entries) == set(entries) - wanted


def test_a_corrupt_shard_is_named():
    store = Store()
    Inventory.read(store, OWNER, NS).write(store, refs(1), "abc")
    store.objects[(NS, inventory_name(OWNER))]["data"]["entries"] = "{not json"
    with pytest.raises(FederationError, match=inventory_name(OWNER)):
        Inventory.read(store, OWNER, NS)


def test_shard_names_are_valid_and_never_another_owners_head():
    long_owner = "gitops/" + "n" * 63 + "/" + "s" * 250
    for index in range(0, 100):
        name = shard_name(long_owner, index)
        assert len(name) <= 253
    assert shard_name(OWNER, 1) == inventory_name(OWNER) + "-1"
    # a head always ends with an 8-hex-digit digest; a shard with its index
    assert shard_name(OWNER, 1).rsplit("-", 1)[1] == "1"

# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory: what one owner applied to one cluster, stored on that cluster.

A ConfigMap holds the owner id, the last applied revision and the object references (identity +
version). Prune deletes what is in the inventory but not in the new bundle; objects whose prune failed
stay in the inventory so the next sync retries them.

The inventory is keyed by owner, not by namespace: its name derives from the owner id alone and it is
found wherever it is, with one LIST of inventory ConfigMaps across namespaces selecting the owner label
(a GET in the sync's namespace when the credentials may not list across namespaces). It is written
into the sync's namespace; a copy found elsewhere (the target namespace changed) is merged and removed
after the new one is written, so nothing it lists is orphaned.

Legacy owner ids (an owner renamed by a release) are read the same way: the entries a ``LegacyOwner``
claims are adopted and removed from the legacy inventory once ours is written.

Sharding: a ConfigMap holds at most 1 MiB, about 3,000 entries with long names. The entries are split, in
sorted order, into shards of at most ``SHARD_BYTES`` of serialised entries each: the head ConfigMap (the name
above; it alone holds the revision, and ``shards`` = N when N > 1) and ``<name>-1`` .. ``<name>-<N-1>`` (data
``shard`` = its index). All shards carry the inventory labels, so the one LIST that finds the inventory finds
every shard (credentials that may not list GET the head, then the N-1 others by name). A write applies only
the shards whose content changed, in an order that keeps every entry listed at every moment (see ``_store``),
then deletes the shards no longer needed; a read is the union of the shards found, so a run killed half-way
through a write leaves an inventory that still lists everything it applied. An inventory of one shard is
exactly the single ConfigMap of earlier releases, which is read (and kept) as it is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import (
    FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_ANNOTATION, OWNER_LABEL, ObjectRef, owner_label_value)

INVENTORY_LABEL = "gitops.federation/inventory"

# Serialised entries per ConfigMap: half the 1 MiB object limit, leaving room for metadata and growth.
SHARD_BYTES = 512 * 1024


def inventory_name(owner):
    """A readable, unique ConfigMap name for an owner id: gitops-inventory-<slug>-<hash>."""
    slug = re.sub(r"[^a-z0-9.-]+", "-", owner.lower().replace("/", ".")).strip(".-")[:200]
    digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:8]
    return "gitops-inventory-%s-%s" % (slug, digest) if slug else "gitops-inventory-%s" % digest


def shard_name(owner, index):
    """The name of shard ``index`` of an owner's inventory (0 is the head: the inventory's own name)."""
    return inventory_name(owner) if index == 0 else "%s-%d" % (inventory_name(owner), index)


class LegacyOwner:
    """An owner id used by an earlier release for (part of) what ``owner`` now manages.

    ``claims(ref)`` says which of its inventory entries belong to the new owner (an old id may have been
    shared by subjects that are now told apart).
    """

    def __init__(self, owner, claims=None):
        self.owner = owner
        self.claims = claims or (lambda ref: True)


class _Stored:
    """One inventory found on the cluster: its shards (ConfigMaps) in one namespace, read as one."""

    def __init__(self, owner, namespace, name, entries, revision, shards=None):
        self.owner, self.namespace, self.name, self.entries, self.revision = owner, namespace, name, entries, revision
        self.shards = dict(shards or {})  # ConfigMap name -> its data as stored (to skip unchanged shards)


def _shard_index(data):
    try:
        return int(data.get("shard") or 0)
    except (TypeError, ValueError):
        return 0


def _parse_entries(data, where):
    entries = {}
    try:
        for item in json.loads(data.get("entries") or "[]"):
            ref = ObjectRef(item["group"], item["kind"], item.get("namespace") or "", item["name"])
            entries[ref] = item["apiVersion"]
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise FederationError("inventory ConfigMap %s is corrupt (data.entries: %s); restore it or delete it and its "
                              "objects by hand" % (where, err))
    return entries


def _group(items, owners):
    """_Stored inventories from inventory ConfigMaps: shards of one owner in one namespace are merged."""
    groups = {}
    for live in items:
        data = live.get("data") or {}
        if data.get("owner") not in owners:  # label values may coincide for different ids: the data is exact
            continue
        metadata = live.get("metadata") or {}
        key = (data["owner"], metadata.get("namespace"))
        stored = groups.get(key)
        if stored is None:
            stored = groups[key] = _Stored(data["owner"], metadata.get("namespace"), inventory_name(data["owner"]),
                                           {}, None)
        where = "%s/%s" % (metadata.get("namespace"), metadata.get("name"))
        for ref, version in _parse_entries(data, where).items():
            stored.entries.setdefault(ref, version)
        if _shard_index(data) == 0:
            stored.revision = data.get("revision") or None
        stored.shards[metadata.get("name")] = dict(data)
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0], k[1] or ""))]


def _find(client, owners, namespace):
    """Inventories of these owner ids, wherever they are (one LIST; GETs of known names when not allowed)."""
    configmaps = client.discovery().find("v1", "ConfigMap")
    labels = sorted(set(owner_label_value(o) for o in owners))
    selector = "%s=true,%s in (%s)" % (INVENTORY_LABEL, OWNER_LABEL, ",".join(labels))
    try:
        items = client.list(configmaps, None, selector)
    except ApiError as err:
        if not err.forbidden:
            raise
        # A namespace-scoped identity: only the sync's namespace can be searched, by name.
        items = []
        for owner in owners:
            live = client.get(configmaps, inventory_name(owner), namespace)
            if live is None:
                continue
            if (live.get("data") or {}).get("owner") != owner:
                raise FederationError("ConfigMap %s/%s is not the inventory of %s (it names owner %r); "
                                      "refusing to use it" % (namespace, inventory_name(owner), owner,
                                                              (live.get("data") or {}).get("owner")))
            items.append(live)
            for index in range(1, _shard_count(live.get("data") or {})):
                shard = client.get(configmaps, shard_name(owner, index), namespace)
                if shard is not None:
                    items.append(shard)
    return _group(items, owners)


def _shard_count(data):
    try:
        return max(1, int(data.get("shards") or 1))
    except (TypeError, ValueError):
        return 1


class Inventory:
    def __init__(self, owner, namespace, entries=None, revision=None, exists=False):
        self.owner = owner
        self.namespace = namespace  # where it is written: the sync's namespace
        self.entries = dict(entries or {})  # ObjectRef -> apiVersion
        self.revision = revision
        self.exists = exists
        self.at_home = exists
        self.elsewhere = []  # _Stored copies to merge away once this one is written (moved or legacy)
        self.legacy_owners = ()
        self.shards = {}  # ConfigMap name -> data, of the shards at home as last read or written

    @property
    def name(self):
        return inventory_name(self.owner)

    @property
    def locations(self):
        """Where the inventory was found, as 'namespace/name' strings (home first)."""
        found = ["%s/%s" % (self.namespace, self.name)] if self.at_home else []
        return found + ["%s/%s" % (s.namespace, s.name) for s in self.elsewhere]

    @classmethod
    def read(cls, client, owner, namespace, legacy_owners=(), relocate=True):
        """The owner's inventory, wherever it is on the cluster.

        With ``relocate`` (a sync) it will be written into ``namespace``; without (a teardown) it stays
        where it was found. Legacy inventories are read only while the owner has none of its own (so
        the migration happens once).
        """
        legacy = dict((lo.owner, lo) for lo in legacy_owners if lo.owner != owner)
        stored = _find(client, [owner] + sorted(legacy), namespace)
        if any(s.owner == owner for s in stored):
            stored = [s for s in stored if s.owner == owner]
        if not relocate:
            own = [s for s in stored if s.owner == owner]
            if own and not any(s.namespace == namespace for s in own):
                namespace = own[0].namespace
        inventory = cls(owner, namespace)
        home = [s for s in stored if s.owner == owner and s.namespace == namespace]
        others = [s for s in stored if not (s.owner == owner and s.namespace == namespace)]
        if home:
            inventory.entries = dict(home[0].entries)
            inventory.revision = home[0].revision
            inventory.shards = dict(home[0].shards)
            inventory.exists = inventory.at_home = True
        for other in others:
            if other.owner == owner:
                claimed = dict(other.entries)
                inventory.revision = inventory.revision or other.revision
            else:
                claimed = dict((ref, v) for ref, v in other.entries.items() if legacy[other.owner].claims(ref))
                if not claimed:
                    continue
            for ref, version in claimed.items():
                inventory.entries.setdefault(ref, version)
            other.claimed = claimed
            inventory.elsewhere.append(other)
            inventory.exists = True
        return inventory

    def same_as(self, entries, revision):
        """True when writing these entries and revision would store exactly what is stored now."""
        return self.at_home and not self.elsewhere and self.entries == entries and \
            (self.revision or "") == (revision or "") and \
            self.shards == _layout(self.owner, entries, revision)

    def write(self, client, entries, revision):
        """Server-side apply the inventory's shards with these entries; then retire copies found elsewhere."""
        self.shards = _store(client, self.owner, self.namespace, entries, revision, self.shards)
        self.entries, self.revision, self.exists, self.at_home = dict(entries), revision, True, True
        self._retire_elsewhere(client)

    def delete(self, client):
        configmaps = client.discovery().find("v1", "ConfigMap")
        if self.at_home:
            _delete_shards(client, configmaps, self.namespace, self.shards or {self.name: None})
        self._retire_elsewhere(client)
        self.entries, self.exists, self.at_home, self.shards = {}, False, False, {}

    def _retire_elsewhere(self, client):
        """Remove moved copies, and our claimed entries from legacy inventories (deleting those left empty)."""
        configmaps = client.discovery().find("v1", "ConfigMap")
        for other in self.elsewhere:
            remaining = dict((ref, v) for ref, v in other.entries.items() if ref not in other.claimed)
            if remaining:
                _store(client, other.owner, other.namespace, remaining, other.revision, other.shards)
            else:
                _delete_shards(client, configmaps, other.namespace, other.shards or {other.name: None})
        self.elsewhere = []


def _delete_shards(client, configmaps, namespace, names):
    """Delete shards, the head last (a run killed half-way still finds the inventory by its head)."""
    for name in sorted(names, key=lambda n: (len(n), n), reverse=True):
        client.delete(configmaps, name, namespace)


def _chunks(entries):
    """Sorted serialised entries split into lists of at most SHARD_BYTES (at least one, possibly empty)."""
    chunks, current, size = [], [], 0
    for ref, version in sorted(entries.items()):
        item = dict(group=ref.group, kind=ref.kind, namespace=ref.namespace, name=ref.name, apiVersion=version)
        length = len(json.dumps([item], indent=1))  # as it is nested in the list, plus a separator's worth
        if current and size + length > SHARD_BYTES:
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += length
    chunks.append(current)
    return chunks


def _layout(owner, entries, revision):
    """{ConfigMap name: data} of the shards that store these entries (one shard: the format of earlier releases).

    The revision is kept in the head only, so a new revision rewrites one ConfigMap.
    """
    chunks = _chunks(entries)
    layout = {}
    for index, chunk in enumerate(chunks):
        data = {"owner": owner, "entries": json.dumps(chunk, indent=1)}
        if index == 0:
            data["revision"] = revision or ""
            if len(chunks) > 1:
                data["shards"] = str(len(chunks))
        else:
            data["shard"] = str(index)
        layout[shard_name(owner, index)] = data
    return layout


def _shard_of(shards):
    """{ObjectRef: shard index} of a {name: data} layout."""
    found = {}
    for name, data in shards.items():
        for ref in _parse_entries(data or {}, name):
            found[ref] = _shard_index(data or {})
    return found


def _store(client, owner, namespace, entries, revision, stored=None):
    """Write the shards whose data differs from ``stored``; delete shards no longer needed. Returns the layout.

    A run may be killed between any two requests, and a read is the union of the shards found, so the order
    keeps every entry that stays listed somewhere at every moment: when entries only move to higher shards
    (entries added) the highest shard is written first, when they only move to lower ones (entries removed)
    the head is written first; a write that does both goes through the union of old and new first.
    """
    stored = dict(stored or {})
    before, after = _shard_of(stored), None
    layout = _layout(owner, entries, revision)
    after = _shard_of(layout)
    moves = [(before[ref], after[ref]) for ref in after if ref in before and before[ref] != after[ref]]
    if any(new > old for old, new in moves) and any(new < old for old, new in moves):
        union = dict(_entries_of(stored))
        union.update(entries)
        stored = _store(client, owner, namespace, union, revision, stored)
        return _store(client, owner, namespace, entries, revision, stored)
    configmaps = client.discovery().find("v1", "ConfigMap")
    upwards = any(new > old for old, new in moves)
    for name in sorted(layout, key=lambda n: _shard_index(layout[n]), reverse=upwards):
        if stored.get(name) == layout[name]:
            continue
        body = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": name, "namespace": namespace,
                "labels": {INVENTORY_LABEL: "true", OWNER_LABEL: owner_label_value(owner),
                           MANAGED_BY_LABEL: MANAGED_BY_VALUE},
                "annotations": {OWNER_ANNOTATION: owner},
            },
            "data": layout[name],
        }
        client.apply(configmaps, body, FIELD_MANAGER, force=True)
    stale = [name for name in stored if name not in layout]
    if stale:
        _delete_shards(client, configmaps, namespace, stale)
    return layout


def _entries_of(shards):
    entries = {}
    for name, data in shards.items():
        entries.update(_parse_entries(data or {}, name))
    return entries

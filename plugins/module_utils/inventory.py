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
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re

from ansible_collections.gitops.federation.plugins.module_utils.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.objects import (
    FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_ANNOTATION, OWNER_LABEL, ObjectRef, owner_label_value)

INVENTORY_LABEL = "gitops.federation/inventory"


def inventory_name(owner):
    """A readable, unique ConfigMap name for an owner id: gitops-inventory-<slug>-<hash>."""
    slug = re.sub(r"[^a-z0-9.-]+", "-", owner.lower().replace("/", ".")).strip(".-")[:200]
    digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:8]
    return "gitops-inventory-%s-%s" % (slug, digest) if slug else "gitops-inventory-%s" % digest


class LegacyOwner:
    """An owner id used by an earlier release for (part of) what ``owner`` now manages.

    ``claims(ref)`` says which of its inventory entries belong to the new owner (an old id may have been
    shared by subjects that are now told apart).
    """

    def __init__(self, owner, claims=None):
        self.owner = owner
        self.claims = claims or (lambda ref: True)


class _Stored:
    """One inventory ConfigMap found on the cluster."""

    def __init__(self, owner, namespace, name, entries, revision):
        self.owner, self.namespace, self.name, self.entries, self.revision = owner, namespace, name, entries, revision


def _parse(live):
    data = live.get("data") or {}
    entries = {}
    for item in json.loads(data.get("entries") or "[]"):
        ref = ObjectRef(item["group"], item["kind"], item.get("namespace") or "", item["name"])
        entries[ref] = item["apiVersion"]
    metadata = live.get("metadata") or {}
    return _Stored(data.get("owner"), metadata.get("namespace"), metadata.get("name"), entries,
                   data.get("revision") or None)


def _find(client, owners, namespace):
    """Inventory ConfigMaps of these owner ids, wherever they are."""
    configmaps = client.discovery().find("v1", "ConfigMap")
    labels = sorted(set(owner_label_value(o) for o in owners))
    selector = "%s=true,%s in (%s)" % (INVENTORY_LABEL, OWNER_LABEL, ",".join(labels))
    try:
        items = client.list(configmaps, None, selector)
    except ApiError as err:
        if not err.forbidden:
            raise
        # A namespace-scoped identity: only the sync's namespace can be searched.
        items = []
        for owner in owners:
            live = client.get(configmaps, inventory_name(owner), namespace)
            if live is not None:
                if (live.get("data") or {}).get("owner") != owner:
                    raise FederationError("ConfigMap %s/%s is not the inventory of %s (it names owner %r); "
                                          "refusing to use it" % (namespace, inventory_name(owner), owner,
                                                                  (live.get("data") or {}).get("owner")))
                items.append(live)
    # Label values may coincide for different owner ids (digests, dots): the data names the owner exactly.
    return [_parse(item) for item in items if (item.get("data") or {}).get("owner") in owners]


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
        home = [s for s in stored if s.owner == owner and s.namespace == namespace and s.name == inventory.name]
        others = [s for s in stored if not (s.owner == owner and s.namespace == namespace and s.name == inventory.name)]
        if home:
            inventory.entries = dict(home[0].entries)
            inventory.revision = home[0].revision
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
        return self.at_home and not self.elsewhere and self.entries == entries and \
            (self.revision or "") == (revision or "")

    def write(self, client, entries, revision):
        """Server-side apply the inventory ConfigMap with these entries; then retire copies found elsewhere."""
        _store(client, self.owner, self.namespace, self.name, entries, revision)
        self.entries, self.revision, self.exists, self.at_home = dict(entries), revision, True, True
        self._retire_elsewhere(client)

    def delete(self, client):
        configmaps = client.discovery().find("v1", "ConfigMap")
        if self.at_home:
            client.delete(configmaps, self.name, self.namespace)
        self._retire_elsewhere(client)
        self.entries, self.exists, self.at_home = {}, False, False

    def _retire_elsewhere(self, client):
        """Remove moved copies, and our claimed entries from legacy inventories (deleting those left empty)."""
        configmaps = client.discovery().find("v1", "ConfigMap")
        for other in self.elsewhere:
            remaining = dict((ref, v) for ref, v in other.entries.items() if ref not in other.claimed)
            if remaining:
                _store(client, other.owner, other.namespace, other.name, remaining, other.revision)
            else:
                client.delete(configmaps, other.name, other.namespace)
        self.elsewhere = []


def _store(client, owner, namespace, name, entries, revision):
    configmaps = client.discovery().find("v1", "ConfigMap")
    serialised = [dict(group=ref.group, kind=ref.kind, namespace=ref.namespace, name=ref.name, apiVersion=version)
                  for ref, version in sorted(entries.items())]
    body = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {INVENTORY_LABEL: "true", OWNER_LABEL: owner_label_value(owner),
                       MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            "annotations": {OWNER_ANNOTATION: owner},
        },
        "data": {"owner": owner, "revision": revision or "", "entries": json.dumps(serialised, indent=1)},
    }
    client.apply(configmaps, body, FIELD_MANAGER, force=True)

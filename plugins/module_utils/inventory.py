# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory: what one owner applied to one cluster, stored on that cluster.

A ConfigMap in the project namespace holds the owner id, the last applied revision and the object
references (identity + version). Prune deletes what is in the inventory but not in the new bundle;
objects whose prune failed stay in the inventory so the next sync retries them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.objects import (
    FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_ANNOTATION, OWNER_LABEL, ObjectRef, owner_label_value)

INVENTORY_LABEL = "gitops.federation/inventory"


def inventory_name(owner):
    """A readable, unique ConfigMap name for an owner id: gitops-inventory-<slug>-<hash>."""
    slug = re.sub(r"[^a-z0-9.-]+", "-", owner.lower().replace("/", ".")).strip(".-")[:200]
    digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:8]
    return "gitops-inventory-%s-%s" % (slug, digest) if slug else "gitops-inventory-%s" % digest


class Inventory:
    def __init__(self, owner, namespace, entries=None, revision=None, exists=False):
        self.owner = owner
        self.namespace = namespace
        self.entries = dict(entries or {})  # ObjectRef -> apiVersion
        self.revision = revision
        self.exists = exists

    @property
    def name(self):
        return inventory_name(self.owner)

    @classmethod
    def read(cls, client, owner, namespace):
        configmaps = client.discovery().find("v1", "ConfigMap")
        live = client.get(configmaps, inventory_name(owner), namespace)
        if live is None:
            return cls(owner, namespace)
        data = live.get("data") or {}
        if data.get("owner") != owner:
            raise FederationError("ConfigMap %s/%s is not the inventory of %s (it names owner %r); refusing to use it"
                                  % (namespace, inventory_name(owner), owner, data.get("owner")))
        entries = {}
        for item in json.loads(data.get("entries") or "[]"):
            ref = ObjectRef(item["group"], item["kind"], item.get("namespace") or "", item["name"])
            entries[ref] = item["apiVersion"]
        return cls(owner, namespace, entries, data.get("revision"), exists=True)

    def same_as(self, entries, revision):
        return self.exists and self.entries == entries and (self.revision or "") == (revision or "")

    def write(self, client, entries, revision):
        """Server-side apply the inventory ConfigMap with these entries; remember them."""
        configmaps = client.discovery().find("v1", "ConfigMap")
        serialised = [dict(group=ref.group, kind=ref.kind, namespace=ref.namespace, name=ref.name, apiVersion=version)
                      for ref, version in sorted(entries.items())]
        body = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": self.name, "namespace": self.namespace,
                "labels": {INVENTORY_LABEL: "true", OWNER_LABEL: owner_label_value(self.owner),
                           MANAGED_BY_LABEL: MANAGED_BY_VALUE},
                "annotations": {OWNER_ANNOTATION: self.owner},
            },
            "data": {"owner": self.owner, "revision": revision or "", "entries": json.dumps(serialised, indent=1)},
        }
        client.apply(configmaps, body, FIELD_MANAGER, force=True)
        self.entries, self.revision, self.exists = dict(entries), revision, True

    def delete(self, client):
        configmaps = client.discovery().find("v1", "ConfigMap")
        client.delete(configmaps, self.name, self.namespace)
        self.entries, self.exists = {}, False

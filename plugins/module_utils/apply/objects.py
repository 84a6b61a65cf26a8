# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes objects as plain dicts: identities, bundle files, ownership labels.

Identity follows kustomize-controller's inventory: namespace + name + group + kind, with the version
kept apart (an object does not change identity when its served version changes).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import re
from collections import namedtuple

from ansible_collections.gitops.federation.plugins.module_utils.source import manifest_yaml
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

try:
    import yaml

    HAS_YAML = True
    SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
except ImportError:  # reported by the modules with missing_required_lib
    HAS_YAML = False

FIELD_MANAGER = "gitops-federation"
OWNER_LABEL = "gitops.federation/owner"
OWNER_ANNOTATION = "gitops.federation/owner"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "gitops.federation"

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class ObjectRef(namedtuple("ObjectRef", ["group", "kind", "namespace", "name"])):
    """The identity of an object: what inventory, prune and change sets talk about."""

    __slots__ = ()

    @classmethod
    def of(cls, obj):
        group = obj.get("apiVersion", "").rpartition("/")[0] if "/" in obj.get("apiVersion", "") else ""
        metadata = obj.get("metadata") or {}
        return cls(group, obj.get("kind", ""), metadata.get("namespace") or "", metadata.get("name", ""))

    def __str__(self):
        kind = "%s.%s" % (self.kind, self.group) if self.group else self.kind
        return "%s/%s/%s" % (kind, self.namespace, self.name) if self.namespace else "%s/%s" % (kind, self.name)


def owner_label_value(owner):
    """A label value for an owner id: readable when the id allows it, a digest otherwise.

    Label values are limited to 63 characters of [A-Za-z0-9._-]; the full owner id is always in the
    owner annotation, which is what prune checks.
    """
    readable = owner.replace("/", ".")
    if len(readable) <= 63 and _LABEL_VALUE.match(readable):
        return readable
    return "sha256-" + hashlib.sha256(owner.encode("utf-8")).hexdigest()[:56]


def owner_selector(owner):
    return "%s=%s" % (OWNER_LABEL, owner_label_value(owner))


def is_owned_by(obj, owner):
    """True only when the live object still carries both our label and our exact owner annotation."""
    metadata = obj.get("metadata") or {}
    return ((metadata.get("labels") or {}).get(OWNER_LABEL) == owner_label_value(owner)
            and (metadata.get("annotations") or {}).get(OWNER_ANNOTATION) == owner)


def stamp_owner(obj, owner):
    """A copy of obj carrying the owner label and annotation (and managed-by)."""
    stamped = copy.deepcopy(obj)
    metadata = stamped.setdefault("metadata", {})
    labels = metadata.get("labels") or {}
    labels[OWNER_LABEL] = owner_label_value(owner)
    labels[MANAGED_BY_LABEL] = MANAGED_BY_VALUE
    metadata["labels"] = labels
    annotations = metadata.get("annotations") or {}
    annotations[OWNER_ANNOTATION] = owner
    metadata["annotations"] = annotations
    return stamped


_REQUIRED = object()


def load_bundle(path, default=_REQUIRED):
    """Objects from a bundle file (multi-document YAML, parsed as kubectl parses it); empty documents are skipped.

    A file that cannot be read or parsed is an error naming it, or, when a default is given, gives the default
    (git_render's diff of a previous bundle that may not exist).
    """
    try:
        return manifest_yaml.load_file(path)
    except FederationError:
        if default is _REQUIRED:
            raise
        return default


def dump_yaml(obj):
    return yaml.dump(obj, Dumper=SafeDumper, default_flow_style=False, sort_keys=True)

# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-cluster overrides: JSON-patch ``add``/``replace``/``remove`` operations (RFC 6902 subset, applied by
the jsonpatch library; paths read by jsonpointer).

``spec.overrides`` is ``[{clusterName, clusterOverrides: [{op, path, value, target}]}]``, as in kubefed.
Paths are RFC 6901 JSON pointers (``~1`` is ``/`` and ``~0`` is ``~`` inside a key; ``-`` after an
array appends, with ``add`` only).

- An override *without* ``target`` patches the federated object's template for that cluster, for example
  ``/spec/path`` (another overlay) or ``/spec/postBuild/substitute/REPLICAS``; for a FederatedSecret it
  patches the propagated Secret (``/metadata/labels/env``, ``/type``).
- An override *with* ``target: {group?, kind, name, namespace?}`` patches the rendered objects it
  selects, on that cluster only (``/spec/replicas`` of Deployment ``web``). A target that selects no
  object is an error, so a typo never goes unnoticed.

Operations follow RFC 6902 strictly: ``add`` needs the parent to exist, ``replace`` and ``remove`` need
the target to exist. A path that does not exist is an error naming the object, the cluster, the
override and the part of the path that is missing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

try:
    import jsonpatch
    import jsonpointer
    HAS_JSONPATCH = True
except ImportError:  # reported when an override is applied
    jsonpatch = jsonpointer = None
    HAS_JSONPATCH = False

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

OPERATIONS = ("add", "replace", "remove")
_BAD_ESCAPE = re.compile(r"~([^01]|$)")
_INDEX = re.compile(r"^(0|[1-9][0-9]*)$")


def parse_pointer(path, context="override"):
    """The reference tokens of an RFC 6901 JSON pointer, unescaped (read by jsonpointer)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise FederationError("%s: path %r is not a JSON pointer: it must start with /" % (context, path))
    for token in path[1:].split("/"):
        if _BAD_ESCAPE.search(token):
            raise FederationError("%s: path %s has an invalid escape in %r (use ~0 for ~ and ~1 for /)"
                                  % (context, path, token))
    _require_libraries()
    try:
        return jsonpointer.JsonPointer(path).parts
    except jsonpointer.JsonPointerException as err:
        raise FederationError("%s: path %s is not a JSON pointer: %s" % (context, path, err))


def _require_libraries():
    if not HAS_JSONPATCH:
        raise FederationError("overrides need the Python libraries jsonpatch and jsonpointer on the controller "
                              "(pip install -r requirements.txt of the collection)")


def apply_operation(doc, op, path, value=None, context="override"):
    """Apply one RFC 6902 operation to doc in place (jsonpatch); return doc.

    jsonpatch's own messages quote the document (a Secret's values among them), so a failure is explained
    here instead, naming the part of the path that is missing.
    """
    if op not in OPERATIONS:
        raise FederationError("%s: op %r is not one of %s" % (context, op, ", ".join(OPERATIONS)))
    tokens = parse_pointer(path, context)
    operation = {"op": op, "path": path}
    if op != "remove":
        operation["value"] = copy.deepcopy(value)
    try:
        jsonpatch.JsonPatch([operation]).apply(doc, in_place=True)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
        _explain_failure(doc, op, path, tokens, context)
        raise FederationError("%s: cannot %s path %s" % (context, op, path))
    return doc


def _pointer(tokens):
    return "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens) if tokens else ""


def _index(token, container, path, walked, context, allow_end=False):
    if not _INDEX.match(token):
        raise FederationError("%s: path %s: %r is not an index of the list at %s"
                              % (context, path, token, walked or "/"))
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise FederationError("%s: path %s does not exist: index %d is out of range of the list at %s (%d items)"
                              % (context, path, index, walked or "/", len(container)))
    return index


def _explain_failure(doc, op, path, tokens, context):
    """Raise the FederationError that says which part of path an operation could not reach."""
    parent = doc
    for depth, token in enumerate(tokens):
        walked, last = _pointer(tokens[:depth]), depth == len(tokens) - 1
        if isinstance(parent, dict):
            if token not in parent and not (last and op == "add"):
                hint = " (use op add to create it)" if op == "replace" and last else (
                    " (add the parent object first)" if op == "add" else "")
                raise FederationError("%s: path %s does not exist: no key %r at %s%s"
                                      % (context, path, token, walked or "/", hint))
            parent = parent.get(token)
        elif isinstance(parent, list):
            if last and token == "-":
                if op != "add":
                    raise FederationError("%s: path %s: - (end of list) works with op add only" % (context, path))
                return
            parent = parent[_index(token, parent, path, walked, context, allow_end=last and op == "add")] \
                if not (last and op == "add" and token == str(len(parent))) else None
        else:
            raise FederationError("%s: path %s does not exist: %s is a %s, not an object or a list"
                                  % (context, path, walked or "/", type(parent).__name__))


def normalize_overrides(overrides, where="overrides"):
    """Validate spec.overrides and return it with every op made explicit (replace by default)."""
    if overrides is None:
        return []
    if not isinstance(overrides, list):
        raise FederationError("%s: expected a list of {clusterName, clusterOverrides}" % where)
    normalized, seen = [], set()
    for index, entry in enumerate(overrides):
        if not isinstance(entry, dict) or not entry.get("clusterName"):
            raise FederationError("%s[%d]: clusterName is required" % (where, index))
        cluster = entry["clusterName"]
        if cluster in seen:
            raise FederationError("%s[%d]: cluster %s has two override entries; merge them into one" % (where, index, cluster))
        seen.add(cluster)
        operations = entry.get("clusterOverrides")
        if not isinstance(operations, list) or not operations:
            raise FederationError("%s[%d] (cluster %s): clusterOverrides must be a non-empty list" % (where, index, cluster))
        ops = []
        for op_index, operation in enumerate(operations):
            context = "%s[clusterName=%s].clusterOverrides[%d]" % (where, cluster, op_index)
            ops.append(_normalize_operation(operation, context))
        normalized.append({"clusterName": cluster, "clusterOverrides": ops})
    return normalized


def _normalize_operation(operation, context):
    if not isinstance(operation, dict):
        raise FederationError("%s: expected {op, path, value, target}" % context)
    op = operation.get("op") or "replace"
    if op not in OPERATIONS:
        raise FederationError("%s: op %r is not one of %s" % (context, op, ", ".join(OPERATIONS)))
    path = operation.get("path")
    parse_pointer(path, context)
    result = {"op": op, "path": path}
    if op != "remove":
        if operation.get("value") is None:
            raise FederationError("%s (%s %s): value is required for op %s" % (context, op, path, op))
        result["value"] = copy.deepcopy(operation["value"])
    target = operation.get("target")
    if target is not None:
        if not isinstance(target, dict) or not target.get("kind") or not target.get("name"):
            raise FederationError("%s (%s %s): target needs kind and name" % (context, op, path))
        result["target"] = dict((k, v) for k, v in target.items() if k in ("group", "kind", "name", "namespace")
                                and v is not None)
    return result


def override_options(targets=False):
    """The suboptions of a module's overrides option (doc fragment overrides; with targets: overrides.targets)."""
    operation = dict(
        op=dict(type="str", choices=list(OPERATIONS), default="replace"),
        path=dict(type="str", required=True),
        value=dict(type="raw"),
    )
    if targets:
        operation["target"] = dict(type="dict", options=dict(
            group=dict(type="str"),
            kind=dict(type="str", required=True),
            name=dict(type="str", required=True),
            namespace=dict(type="str"),
        ))
    return dict(
        cluster_name=dict(type="str", required=True, aliases=["clusterName"]),
        cluster_overrides=dict(type="list", elements="dict", required=True, aliases=["clusterOverrides"],
                               options=operation),
    )


def overrides_from_options(overrides):
    """spec.overrides from a module's snake_case ``overrides`` option (doc fragment overrides)."""
    if overrides is None:
        return None
    return [{"clusterName": entry["cluster_name"],
             "clusterOverrides": [dict((k, v) for k, v in op.items() if v is not None)
                                  for op in entry["cluster_overrides"]]} for entry in overrides]


def override_cluster_names(overrides):
    return [entry.get("clusterName") for entry in overrides or [] if isinstance(entry, dict)]


def cluster_operations(overrides, cluster, where="overrides"):
    """The operations of one cluster as (context, operation) pairs, in order."""
    for entry in overrides or []:
        if entry.get("clusterName") == cluster:
            return [("%s[clusterName=%s].clusterOverrides[%d] (%s %s)" % (where, cluster, index, op.get("op", "replace"),
                                                                          op.get("path")), op)
                    for index, op in enumerate(entry.get("clusterOverrides") or [])]
    return []


def apply_template_overrides(template, overrides, cluster, where="overrides"):
    """A copy of template with the cluster's overrides without target applied."""
    patched = copy.deepcopy(template)
    for context, op in cluster_operations(overrides, cluster, where):
        if op.get("target") is None:
            _check_value(op, context)
            apply_operation(patched, op.get("op") or "replace", op.get("path"), op.get("value"), context)
    return patched


def target_operations(overrides, cluster):
    """The cluster's overrides that have a target (to be applied to rendered objects), op made explicit."""
    return [dict(op, op=op.get("op") or "replace") for unused_context, op in cluster_operations(overrides, cluster)
            if op.get("target") is not None]


def target_matches(target, obj):
    api_version = obj.get("apiVersion") or ""
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    metadata = obj.get("metadata") or {}
    if obj.get("kind") != target.get("kind") or metadata.get("name") != target.get("name"):
        return False
    if target.get("group") is not None and target["group"] != group:
        return False
    if target.get("namespace") and metadata.get("namespace") not in (None, "", target["namespace"]):
        return False
    return True


def apply_object_overrides(objects, operations, cluster=None, where="overrides"):
    """Copies of objects with target operations applied; a target that selects nothing is an error."""
    patched = [copy.deepcopy(obj) for obj in objects]
    for index, op in enumerate(operations or []):
        target = op.get("target") or {}
        context = "%s%s[%d] (%s %s on %s %s)" % (
            where, "[clusterName=%s]" % cluster if cluster else "", index, op.get("op") or "replace", op.get("path"),
            target.get("kind"), target.get("name"))
        if not target.get("kind") or not target.get("name"):
            raise FederationError("%s: target needs kind and name" % context)
        _check_value(op, context)
        matched = [obj for obj in patched if isinstance(obj, dict) and target_matches(target, obj)]
        if not matched:
            raise FederationError("%s: the target matches no rendered object" % context)
        for obj in matched:
            apply_operation(obj, op.get("op") or "replace", op.get("path"), op.get("value"), context)
    return patched


def _check_value(op, context):
    if (op.get("op") or "replace") != "remove" and op.get("value") is None:
        raise FederationError("%s: value is required for op %s" % (context, op.get("op") or "replace"))

# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deciding whether an object drifted, and rendering diffs that never show secret values.

The cheap, exact test: server-side apply records, per field manager, exactly which fields it set
(``metadata.managedFields``). Extracting the live values of the fields *we* own and comparing them
with what we are about to apply tells us, without a request, that an apply would be a no-op. When
they differ (drift, a new field, or merely a value the server normalises such as ``1000m`` -> ``1``)
the engine asks the server with a dry-run apply and compares that result with the live object, so
the final answer is always the server's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import json

from ansible_collections.gitops.federation.plugins.module_utils.objects import FIELD_MANAGER

# Fields the server maintains on every write; they never count as drift.
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")
REDACTED = "<redacted>"
REDACTED_CHANGED = "<redacted: changed>"


def owned_fields(live, manager=FIELD_MANAGER):
    """The fieldsV1 set our manager applied on this object, or None."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply" and not entry.get("subresource"):
            return entry.get("fieldsV1") or {}
    return None


def extract(value, fields):
    """The part of a live value covered by a fieldsV1 set (an empty set means the whole value)."""
    members = dict((k, v) for k, v in fields.items() if k != ".")
    if not members:
        return copy.deepcopy(value)
    if isinstance(value, dict):
        out = {}
        for key, sub in members.items():
            if key.startswith("f:") and key[2:] in value:
                out[key[2:]] = extract(value[key[2:]], sub)
        return out
    if isinstance(value, list):
        out = []
        for index, item in enumerate(value):
            for key, sub in members.items():
                if _list_member_matches(key, index, item):
                    out.append(extract(item, sub) if key[0] in "ki" else copy.deepcopy(item))
                    break
        return out
    return copy.deepcopy(value)


def _list_member_matches(key, index, item):
    if key.startswith("k:"):
        wanted = json.loads(key[2:])
        return isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items())
    if key.startswith("v:"):
        return item == json.loads(key[2:])
    if key.startswith("i:"):
        return index == int(key[2:])
    return False


def applied_body(obj):
    """What an apply configuration sets besides identity: everything but apiVersion/kind/name/namespace."""
    body = dict((k, v) for k, v in obj.items() if k not in ("apiVersion", "kind"))
    metadata = dict((k, v) for k, v in (obj.get("metadata") or {}).items() if k not in ("name", "namespace"))
    if metadata:
        body["metadata"] = metadata
    else:
        body.pop("metadata", None)
    return without_nulls(body)


def without_nulls(value):
    """A copy without None values (an option not given is not part of the desired object)."""
    if isinstance(value, dict):
        return dict((k, without_nulls(v)) for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def apply_is_noop(desired, live, manager=FIELD_MANAGER):
    """True when re-applying desired would change nothing: the manager's owned fields already hold these values."""
    fields = owned_fields(live, manager)
    if fields is None:
        return False
    return extract(live, fields) == applied_body(desired)


def drift_of(desired, live, dry_run_apply, manager=FIELD_MANAGER):
    """What applying desired to an existing live object would store, or None when it would change nothing.

    The owned-fields test answers without a request; only when it cannot does ``dry_run_apply()`` (a
    server-side dry-run apply of desired) decide, compared with live.
    """
    if apply_is_noop(desired, live, manager):
        return None
    after = dry_run_apply()
    return None if same_object(after, live) else after


def comparable(obj):
    """An object without the fields every write touches (for dry-run result vs live comparison)."""
    trimmed = dict(obj)
    metadata = dict(obj.get("metadata") or {})
    for key in _VOLATILE_METADATA:
        metadata.pop(key, None)
    trimmed["metadata"] = metadata
    return trimmed


def same_object(a, b):
    return comparable(a) == comparable(b)


def normalize(obj):
    """Bring desired objects to the form the server stores, so the no-op test stays cheap.

    Secret ``stringData`` is write-only (the server folds it into ``data``), so a Secret applied with
    it would look drifted on every run; fold it ourselves, as Flux does.
    """
    if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1" and obj.get("stringData"):
        obj = copy.deepcopy(obj)
        data = obj.get("data") or {}
        for key, value in obj.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
        obj["data"] = data
    return obj


def for_display(obj, other=None):
    """An object as shown in diffs and results: volatile metadata dropped, Secret values redacted.

    ``other`` is the object on the other side of the diff; a redacted value that differs from it is
    marked as changed, so a diff still tells which keys changed without showing any value.
    """
    if obj is None:
        return None
    shown = comparable(obj)
    shown["metadata"].pop("managedFields", None)
    if obj.get("kind") == "Secret" and not obj.get("apiVersion", "v1").count("/"):
        other_data = dict((other or {}).get("data") or {})
        other_data.update((other or {}).get("stringData") or {})
        for field in ("data", "stringData"):
            if isinstance(shown.get(field), dict):
                shown[field] = dict((key, _mask(value, other_data.get(key), other is not None))
                                    for key, value in shown[field].items())
        annotations = shown["metadata"].get("annotations") or {}
        if "kubectl.kubernetes.io/last-applied-configuration" in annotations:
            annotations = dict(annotations)
            annotations["kubectl.kubernetes.io/last-applied-configuration"] = REDACTED
            shown["metadata"]["annotations"] = annotations
    return shown


def _mask(value, other_value, has_other):
    return REDACTED_CHANGED if has_other and other_value != value else REDACTED

# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deciding whether an object drifted, and rendering diffs that never show secret values.

The cheap, exact test: server-side apply records, per field manager, exactly which fields it set
(``metadata.managedFields``). Extracting the live values of the fields *we* own and comparing them
with what we are about to apply tells us, without a request, that an apply would be a no-op. When
they differ (drift, a new field, or merely a value the server normalises such as ``1000m`` -> ``1``)
the engine asks the server with a dry-run apply and compares what we own in that result with what
we own in the live object, so the final answer is always the server's.

Only what we own counts: ``status`` never does (controllers write it all the time), nor fields other
managers or the server set. Resource quantities are compared by value as the server normalises them
(``cpu: 0.5`` is stored as ``500m``), so such a manifest costs no dry-run on every run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import copy
import json
import re
from fractions import Fraction

from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import FIELD_MANAGER

# Fields the server maintains on every write; they never count as drift.
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")
# Maps whose values are resource.Quantity in the built-in APIs (container resources, ResourceQuota,
# LimitRange, PersistentVolume(Claim), RuntimeClass overhead), and single quantity fields.
QUANTITY_MAPS = frozenset(["limits", "requests", "hard", "capacity", "allocatable", "overhead", "max", "min",
                           "default", "defaultRequest", "maxLimitRequestRatio"])
QUANTITY_FIELDS = frozenset(["sizeLimit"])
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
                       r"(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|n|u|m|k|M|G|T|P|E)?$")
_SUFFIXES = {"n": Fraction(1, 10 ** 9), "u": Fraction(1, 10 ** 6), "m": Fraction(1, 1000), "": Fraction(1),
             "k": Fraction(10 ** 3), "M": Fraction(10 ** 6), "G": Fraction(10 ** 9), "T": Fraction(10 ** 12),
             "P": Fraction(10 ** 15), "E": Fraction(10 ** 18), "Ki": Fraction(2 ** 10), "Mi": Fraction(2 ** 20),
             "Gi": Fraction(2 ** 30), "Ti": Fraction(2 ** 40), "Pi": Fraction(2 ** 50), "Ei": Fraction(2 ** 60)}
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
    return same_values(applied_body(desired), extract(live, fields), builtin=_is_builtin(desired))


def drift_of(desired, live, dry_run_apply, manager=FIELD_MANAGER):
    """What applying desired to an existing live object would store, or None when it would change nothing.

    The owned-fields test answers without a request; only when it cannot does ``dry_run_apply()`` (a
    server-side dry-run apply of desired) decide: what the manager would own afterwards (field set and
    values, status excluded) against what it owns now. Fields of other managers, status and server
    bookkeeping that changed in between are not drift.
    """
    if apply_is_noop(desired, live, manager):
        return None
    after = dry_run_apply()
    return None if same_owned(after, live, manager) else after


def same_owned(after, live, manager=FIELD_MANAGER):
    """True when the manager owns the same fields with the same values in both objects (status aside)."""
    after_fields, live_fields = owned_fields(after, manager), owned_fields(live, manager)
    if after_fields is None or live_fields is None:
        return after_fields is None and live_fields is None and same_object(after, live)
    return after_fields == live_fields and \
        _without_status(extract(after, after_fields)) == _without_status(extract(live, live_fields))


def same_values(desired, live, builtin=True):
    """desired == live, but status never counts and quantities compare by value (built-in kinds only)."""
    return _equal(_without_status(desired), _without_status(live), builtin, False, False)


def _without_status(body):
    if isinstance(body, dict) and "status" in body:
        body = dict(body)
        del body["status"]
    return body


def _is_builtin(obj):
    """Built-in API groups (core, *.k8s.io, no dot) normalise quantities; custom resources store what they get."""
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def _equal(a, b, builtin, quantity_map, quantity_field):
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return False
        return all(_equal(a[k], b[k], builtin, builtin and k in QUANTITY_MAPS,
                          builtin and (quantity_map or k in QUANTITY_FIELDS)) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y, builtin, False, False) for x, y in zip(a, b))
    if quantity_field and a != b:
        left, right = parse_quantity(a), parse_quantity(b)
        return left is not None and left == right
    return a == b and type(a) is type(b) if isinstance(a, bool) or isinstance(b, bool) else a == b


def parse_quantity(value):
    """The exact value of a Kubernetes resource.Quantity (string or number), or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        value = repr(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if not match:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return Fraction(number) * Fraction(10) ** int(suffix[1:])
    return Fraction(number) * _SUFFIXES[suffix]


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

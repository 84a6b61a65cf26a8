# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Field-level differences of what we own between a live object and what an apply would store, and who owns them.

Used by the preview (what a ref would change) and the drift report (what changed since the last applied
revision, and by which field manager). Only fields our field manager owns before or after count (from
``metadata.managedFields``), so fields the server, controllers or other tools set are not reported. Secret
values never appear: a changed key of a Secret's data (or its last-applied annotation) is shown as
``<redacted>`` -> ``<redacted: changed>``, as ``drift.for_display`` shows it in diffs.

A path reads like ``spec.template.spec.containers[name=app].image`` or ``data.LOG_LEVEL``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.gitops.federation.plugins.module_utils.apply.drift import (
    REDACTED, REDACTED_CHANGED, comparable, extract, owned_fields)
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import FIELD_MANAGER

MAX_VALUE = 200  # characters of a value shown in a report


def merge_fields(a, b):
    """The union of two fieldsV1 sets."""
    if not a:
        return dict(b or {})
    if not b:
        return dict(a)
    merged = dict(a)
    for key, value in b.items():
        merged[key] = merge_fields(merged.get(key), value) if key in merged else value
    return merged


def other_managers(live, manager=FIELD_MANAGER):
    """[(manager, operation, fieldsV1)] of every field manager of a live object but our apply."""
    found = []
    for entry in (live or {}).get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        if entry.get("subresource") == "status":
            continue  # status writers never own the fields we apply (scale writers do: spec.replicas)
        found.append((entry.get("manager") or "unknown", entry.get("operation") or "", entry.get("fieldsV1") or {}))
    return found


def field_changes(before, after, manager=FIELD_MANAGER):
    """[{path, before, after, managers}] for the fields we own on either side whose value differs.

    ``before`` is the live object (or None), ``after`` what the apply would store (the server's dry-run) or None.
    ``managers`` names the other field managers that own the path in the live object (``kubectl-edit (Update)``).
    """
    ours = merge_fields(owned_fields(before or {}, manager) or {}, owned_fields(after or {}, manager) or {})
    if not ours:
        return []
    shown_before = extract(comparable(before), ours) if before else None
    shown_after = extract(comparable(after), ours) if after else None
    others = [(name + (" (%s)" % op if op else ""), fields) for name, op, fields in other_managers(before, manager)]
    changes = []
    _walk(shown_before, shown_after, [], others, changes)
    if _is_secret(after or before):
        for change in changes:
            if change["path"].split(".", 1)[0] in ("data", "stringData") or "last-applied-configuration" in \
                    change["path"]:
                change["before"] = None if change["before"] is None else REDACTED
                change["after"] = None if change["after"] is None else REDACTED_CHANGED
    return changes


def _is_secret(obj):
    return (obj or {}).get("kind") == "Secret" and "/" not in str((obj or {}).get("apiVersion", "v1"))


def _walk(before, after, path, others, changes):
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if key == "status" and not path:
                continue
            sub = [(name, fields["f:" + key]) for name, fields in others if "f:" + key in fields]
            _walk(before.get(key, _MISSING), after.get(key, _MISSING), path + [key], sub, changes)
        return
    if isinstance(before, list) and isinstance(after, list) and _keyed(before) and _keyed(after):
        old = dict((item["name"], (i, item)) for i, item in enumerate(before))
        new = dict((item["name"], item) for item in after)
        for name in sorted(set(old) | set(new), key=lambda n: (old.get(n, (len(old),))[0], n)):
            index, item = old.get(name, (None, None))
            sub = []
            for manager, fields in others:
                for key, value in fields.items():
                    if key.startswith("k:") and item is not None and _key_matches(key, item):
                        sub.append((manager, value))
            _walk(item if item is not None else _MISSING, new.get(name, _MISSING), path + ["[name=%s]" % name],
                  sub, changes)
        return
    if before == after:
        return
    changes.append(dict(path=_path_text(path), before=_shown(before), after=_shown(after),
                        managers=sorted(set(name for name, unused in others))))


class _Missing(object):
    def __repr__(self):
        return "<absent>"


_MISSING = _Missing()


def _keyed(items):
    return all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items) and \
        len(set(i["name"] for i in items)) == len(items)


def _key_matches(key, item):
    try:
        wanted = json.loads(key[2:])
    except ValueError:
        return False
    return isinstance(wanted, dict) and all(item.get(k) == v for k, v in wanted.items())


def _path_text(path):
    text = ""
    for part in path:
        text += part if part.startswith("[") else ("." if text else "") + part
    return text


def _shown(value):
    if value is _MISSING:
        return None
    if isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True)
    else:
        return value if not isinstance(value, str) or len(value) <= MAX_VALUE else value[:MAX_VALUE] + "..."
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + "..."

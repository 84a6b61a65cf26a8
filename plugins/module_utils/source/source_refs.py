# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering another ref than a source's own: a pull request's head (preview) or the last applied revision (drift).

``ref_override`` (option of ``sync_plan``) is one of:

- a ref for every source in scope: a string (``feature/x``, ``tag:v1.2.0``, ``commit:1a2b3c4``, a bare commit
  SHA, ``refs/heads/x``, ``refs/tags/v1``, a revision such as ``main@sha1:<sha>``) or a mapping with one of
  ``branch``, ``tag``, ``semver``, ``commit``;
- a mapping of source (``name`` or ``namespace/name``) to such a ref, for some sources only;
- ``last-applied``: each source's ``status.lastAppliedRevision`` (the drift report compares with it).

Only the git ref of the render changes; path, substitutions, overrides and placement stay the source's own.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

LAST_APPLIED = "last-applied"
REF_KINDS = ("branch", "tag", "semver", "commit")
_SHA = re.compile(r"^[0-9a-f]{7,64}$")
_REVISION = re.compile(r"^(?:.+@)?sha(?:1|256):([0-9a-f]{7,64})$")


def parse_ref(value, where="ref_override"):
    """A git ref mapping ({branch|tag|semver|commit: value}) from the forms the module docs list."""
    if isinstance(value, dict):
        kinds = [k for k in value if k in REF_KINDS and value[k]]
        if len(kinds) != 1 or len(value) != 1:
            raise FederationError("%s must have exactly one of %s, got %r" % (where, ", ".join(REF_KINDS), value))
        return {kinds[0]: str(value[kinds[0]])}
    text = str(value or "").strip()
    if not text:
        raise FederationError("%s is empty: give a branch, tag:<tag>, commit:<sha> or a commit SHA" % where)
    for kind in REF_KINDS:
        if text.startswith(kind + ":"):
            rest = text[len(kind) + 1:].strip()
            if not rest:
                raise FederationError("%s %r names no %s" % (where, text, kind))
            return {kind: rest}
    revision = _REVISION.match(text)
    if revision:
        return {"commit": revision.group(1)}
    if _SHA.match(text) and len(text) in (40, 64):
        return {"commit": text}
    if text.startswith("refs/heads/"):
        return {"branch": text[len("refs/heads/"):]}
    if text.startswith("refs/tags/"):
        return {"tag": text[len("refs/tags/"):]}
    return {"branch": text}


def _per_source(override):
    return isinstance(override, dict) and not any(k in REF_KINDS for k in override)


def override_refs(sources, override):
    """Set the ref of every render of the sources the override names (sources are read_projects views)."""
    if _per_source(override):
        wanted = dict((str(k), v) for k, v in override.items())
        known = set()
        for source in sources:
            for key in ("%s/%s" % (source["namespace"], source["name"]), source["name"]):
                if key in wanted:
                    known.add(key)
                    _set(source, wanted[key], "ref_override[%s]" % key)
                    break
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise FederationError("ref_override names sources that are not in this run's scope: %s (in scope: %s)"
                                  % (", ".join(unknown), ", ".join("%s/%s" % (s["namespace"], s["name"])
                                                                   for s in sources) or "none"))
        return
    for source in sources:
        _set(source, override, "ref_override")


def _set(source, value, where):
    if value == LAST_APPLIED:
        revision = (source.get("status") or {}).get("last_applied_revision")
        if not revision:
            if not source.get("errors") and not source.get("suspended"):
                source["errors"].append("nothing applied yet (no status.lastAppliedRevision): no revision to "
                                        "compare the clusters with")
            return
        ref = parse_ref(revision, "status.lastAppliedRevision of %s/%s" % (source["namespace"], source["name"]))
    else:
        ref = parse_ref(value, where)
    source["ref_override"] = ref
    for render in source.get("renders") or []:
        render["ref"] = dict(ref)

# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports of a sync run done in check mode: the preview of a ref, and the drift report.

Both come from the same run of the sync path (``sync_plan`` -> ``cluster_reconcile`` in check mode with diff):
the plan says what was rendered per source, each cluster's registered ``cluster_reconcile`` result says what
the engine would do there (``details[<source key>].changes``: created/configured/pruned objects, with the
owned fields that differ, see ``field_diff``). Pure functions, but for ``write_report``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

NO_CHANGES, CHANGES, ERROR = "no_changes", "changes", "error"
# The playbook's exit status for each outcome (see docs/playbooks.md, preview).
EXIT_CODES = {NO_CHANGES: 0, CHANGES: 2, ERROR: 1}
DRIFTED, NOT_DRIFTED, UNKNOWN = "True", "False", "Unknown"


def write_report(path, text):
    """Write a report file atomically (a CI job never reads half a file); raise FederationError naming it."""
    from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

    directory = os.path.dirname(os.path.abspath(path))
    try:
        handle, temporary = tempfile.mkstemp(prefix=".report-", dir=directory)
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except (IOError, OSError) as err:
        raise FederationError("cannot write the report to %s: %s" % (path, err))


def _cluster_outcomes(plan, reconciled, entry):
    """(cluster, details or None, error or None) for every cluster of a ready source's work."""
    key = entry["key"]
    clusters = sorted(set(entry.get("clusters") or {}) | set(
        c for c in entry.get("unplaced") or [] if key in ((reconciled.get(c) or {}).get("details") or {})))
    for cluster in clusters:
        result = reconciled.get(cluster)
        if not isinstance(result, dict) or result.get("skipped") or "report" not in result and not result.get("msg"):
            yield cluster, None, "the cluster was not reconciled (%s)" % (
                "skipped" if isinstance(result, dict) and result.get("skipped") else "no result")
            continue
        details = (result.get("details") or {}).get(key)
        reported = ((result.get("report") or {}).get("sources") or {}).get(key) or {}
        if details is None:
            if cluster not in (entry.get("clusters") or {}) or reported.get("status") == "Suspended":
                continue  # not this cluster's work, or suspended here by an override
            yield cluster, None, reported.get("message") or result.get("msg") or "no result for this source"
        elif details.get("failed"):
            yield cluster, None, details.get("msg") or "failed"
        else:
            yield cluster, details, None


def preview(plan, reconciled, ref=None):
    """The preview summary: outcome, and per source and cluster what would be created, changed, pruned."""
    sources, errors = [], []
    for entry in plan.get("sources") or []:
        item = dict(source=entry["key"], revision=entry.get("revision"), ref=entry.get("ref_override"),
                    clusters=[], error=None)
        if entry.get("suspended") or entry.get("terminating"):
            item["skipped"] = "suspended" if entry.get("suspended") else "being deleted"
            sources.append(item)
            continue
        if not entry.get("ready"):
            item["error"] = entry.get("error") or "not rendered"
            errors.append("%s: %s" % (entry["key"], item["error"]))
            sources.append(item)
            continue
        for cluster, details, error in _cluster_outcomes(plan, reconciled, entry):
            row = dict(cluster=cluster, created=[], changed=[], pruned=[], deleted=[], counts={}, error=error)
            if error:
                errors.append("%s on %s: %s" % (entry["key"], cluster, error))
            else:
                row["counts"] = dict((k, v) for k, v in (details.get("counts") or {}).items() if v)
                if details.get("state") == "absent":
                    row["removal"] = True
                for change in details.get("changes") or []:
                    action = change["action"]
                    if action == "created":
                        row["created"].append(change["subject"])
                    elif action in ("configured", "recreated"):
                        row["changed"].append(dict(subject=change["subject"], recreated=action == "recreated",
                                                   fields=[dict(path=f["path"], before=f["before"], after=f["after"])
                                                           for f in change.get("fields") or []]))
                    elif action == "pruned":
                        row["pruned"].append(change["subject"])
                    elif action == "deleted":
                        row["deleted"].append(change["subject"])
            row["outcome"] = ERROR if error else (
                CHANGES if row["created"] or row["changed"] or row["pruned"] or row["deleted"] else NO_CHANGES)
            item["clusters"].append(row)
        sources.append(item)
    changed = any(c["outcome"] == CHANGES for s in sources for c in s["clusters"])
    outcome = ERROR if errors else (CHANGES if changed else NO_CHANGES)
    return dict(outcome=outcome, exit_code=EXIT_CODES[outcome], ref=ref, sources=sources, errors=errors)


def _code(text):
    text = "" if text is None else str(text)
    return "`%s`" % text.replace("`", "'").replace("\n", " ").replace("|", "\\|")


def preview_markdown(summary):
    """The preview as a Markdown pull-request comment."""
    headline = {NO_CHANGES: "no changes", CHANGES: "changes", ERROR: "errors"}[summary["outcome"]]
    ref = " of %s" % _code(_ref_text(summary.get("ref"))) if summary.get("ref") else ""
    lines = ["## GitOps preview%s: %s" % (ref, headline), ""]
    for line in summary["errors"]:
        lines.append("- :x: %s" % line.replace("\n", " "))
    if summary["errors"]:
        lines.append("")
    for source in summary["sources"]:
        title = "### %s" % _code(source["source"])
        if source.get("revision"):
            title += " at %s" % _code(source["revision"])
        lines += [title, ""]
        if source.get("skipped"):
            lines += ["Not previewed: %s." % source["skipped"], ""]
            continue
        if source.get("error"):
            lines += ["Not rendered: %s" % source["error"].replace("\n", " "), ""]
            continue
        lines += ["| cluster | created | changed | pruned | unchanged |", "|---|---|---|---|---|"]
        for row in source["clusters"]:
            if row["error"]:
                lines.append("| %s | error: %s | | | |" % (row["cluster"], row["error"].replace("|", "\\|")[:300]))
                continue
            lines.append("| %s | %d | %d | %d | %d |" % (row["cluster"], len(row["created"]), len(row["changed"]),
                                                         len(row["pruned"]) + len(row["deleted"]),
                                                         row["counts"].get("unchanged", 0)))
        lines.append("")
        for row in source["clusters"]:
            if row["outcome"] != CHANGES:
                continue
            lines += ["<details><summary>%s</summary>" % row["cluster"], ""]
            lines += ["- created %s" % _code(s) for s in row["created"]]
            for change in row["changed"]:
                lines.append("- %s %s" % ("recreated" if change["recreated"] else "changed", _code(change["subject"])))
                for field in change["fields"]:
                    lines.append("  - %s: %s → %s" % (_code(field["path"]), _code(_value(field["before"])),
                                                      _code(_value(field["after"]))))
            lines += ["- pruned %s" % _code(s) for s in row["pruned"]]
            lines += ["- deleted %s (the cluster left the placement)" % _code(s) for s in row["deleted"]]
            lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def _value(value):
    return "(absent)" if value is None else value


def _ref_text(ref):
    if isinstance(ref, dict):
        return ", ".join("%s: %s" % (k, _ref_text(v)) for k, v in sorted(ref.items()))
    return str(ref)


# -- drift ----------------------------------------------------------------------------------------------------


def drift(plan, reconciled):
    """Per source and cluster, the objects whose live state left the last applied revision, and by whom."""
    sources = []
    for entry in plan.get("sources") or []:
        if entry.get("suspended") or entry.get("terminating"):
            continue
        item = dict(source=entry["key"], namespace=entry["namespace"], name=entry["name"],
                    revision=entry.get("revision"), clusters=[], error=None)
        if not entry.get("ready"):
            item["error"] = entry.get("error") or "not rendered"
        else:
            for cluster, details, error in _cluster_outcomes(plan, reconciled, entry):
                if cluster not in (entry.get("clusters") or {}):
                    continue  # removal from a cluster outside the placement: not drift of the revision
                row = dict(cluster=cluster, objects=[], error=error)
                for change in (details or {}).get("changes") or []:
                    row["objects"].extend(_drifted_object(change))
                item["clusters"].append(row)
        item["state"], item["reason"], item["message"] = drift_condition(item)
        sources.append(item)
    return dict(drifted=any(s["state"] == DRIFTED for s in sources), sources=sources)


def _drifted_object(change):
    action = change["action"]
    if action == "created":
        return [dict(subject=change["subject"], drift="deleted", fields=[], managers=[])]
    if action in ("configured", "recreated"):
        fields = [dict(path=f["path"], live=f["before"], applied=f["after"], managers=f.get("managers") or [])
                  for f in change.get("fields") or []]
        managers = sorted(set(m for f in fields for m in f["managers"]))
        kind = "conflict" if any(m.endswith("(Apply)") for m in managers) else "modified"
        return [dict(subject=change["subject"], drift=kind, fields=fields, managers=managers)]
    return []  # pruned: listed in the inventory beyond the revision (a prune retried by the next sync)


def drift_condition(item):
    """(status, reason, message) of the source's Drifted condition."""
    revision = item.get("revision") or "the last applied revision"
    if item.get("error"):
        return UNKNOWN, "DriftCheckFailed", "drift not checked: %s" % item["error"][:400]
    failed = [c for c in item["clusters"] if c["error"]]
    drifted = [c for c in item["clusters"] if c["objects"]]
    if drifted:
        parts = []
        for row in drifted:
            objects = ", ".join("%s %s%s" % (o["subject"], o["drift"], " by " + "/".join(o["managers"])
                                             if o["managers"] else "") for o in row["objects"][:5])
            more = len(row["objects"]) - 5
            parts.append("%s: %s%s" % (row["cluster"], objects, " and %d more" % more if more > 0 else ""))
        message = "live state differs from %s on %s" % (revision, "; ".join(parts))
        if failed:
            message += "; not checked on %s" % ", ".join(c["cluster"] for c in failed)
        return DRIFTED, "DriftDetected", message[:1024]
    if failed:
        return UNKNOWN, "DriftCheckFailed", ("drift not checked on %s" % "; ".join(
            "%s: %s" % (c["cluster"], c["error"]) for c in failed))[:1024]
    clusters = [c["cluster"] for c in item["clusters"]]
    return NOT_DRIFTED, "NoDrift", "live state matches %s on %s" % (
        revision, ", ".join(clusters) if clusters else "no cluster (placed on none)")


def drift_markdown(report):
    lines = ["## GitOps drift report: %s" % ("drift found" if report["drifted"] else "no drift"), ""]
    for source in report["sources"]:
        lines += ["### %s (Drifted=%s, %s)" % (_code(source["source"]), source["state"], source["reason"]), "",
                  source["message"], ""]
        for row in source["clusters"]:
            for obj in row["objects"]:
                who = " by %s" % ", ".join(obj["managers"]) if obj["managers"] else ""
                lines.append("- %s: %s %s%s" % (row["cluster"], _code(obj["subject"]), obj["drift"], who))
                for field in obj["fields"]:
                    lines.append("  - %s: applied %s, live %s" % (_code(field["path"]), _code(_value(field["applied"])),
                                                                  _code(_value(field["live"]))))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

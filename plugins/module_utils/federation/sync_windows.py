# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sync windows: when a sync may write to a cluster, declared by the operator in the inventory.

A window (``gitops_sync_windows``) opens at every time its cron ``schedule`` matches, in its ``timezone``
(an IANA name, default UTC), and stays open for ``duration`` (``8h``, ``90m``, ``1h30m``). ``kind: allow``
windows say when syncing is allowed, ``kind: deny`` windows when it is not. A window applies to the work of a
source on a cluster when every scope it gives matches: ``projects`` (namespaces), ``sources`` (names or
``namespace/name``), ``clusters`` (inventory names), ``cluster_labels`` (all must match); a window with no scope
applies to everything.

The rule (Argo CD's): work is blocked when an applicable deny window is open, or when applicable allow windows
exist and none is open. ``force`` (``-e force=true``) lets a manual run through and is recorded.

Cron: five fields (minute hour day-of-month month day-of-week) with ``*``, lists, ranges, steps and names
(``jan``, ``mon``), day-of-week 0 or 7 for Sunday, day-of-month and day-of-week OR-ed when both are given (as
cron does), and ``@hourly``/``@daily``/``@weekly``/``@monthly``/``@yearly``. Evaluated minute by minute in the
window's time zone (zoneinfo), so daylight-saving changes behave as a wall clock does. Pure functions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:  # Python < 3.9: windows other than UTC cannot be evaluated
    ZoneInfo = None
    ZoneInfoNotFoundError = KeyError

ALLOW, DENY = "allow", "deny"
MAX_DURATION_MINUTES = 7 * 24 * 60
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
           "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_MONTHS = dict((name, i + 1) for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")))
_DAYS = dict((name, i) for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat")))
# (name, low, high, names)
_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}), ("month", 1, 12, _MONTHS),
           ("day of week", 0, 7, _DAYS))
_KEYS = frozenset(["name", "kind", "schedule", "duration", "timezone", "projects", "sources", "clusters",
                   "cluster_labels"])


class CronSchedule:
    """A five-field cron expression; ``matches(local datetime)``."""

    def __init__(self, text, where="schedule"):
        self.text = str(text).strip()
        expression = _MACROS.get(self.text.lower(), self.text)
        fields = expression.split()
        if len(fields) != 5:
            raise FederationError("%s %r: a cron schedule has five fields (minute hour day-of-month month "
                                  "day-of-week), got %d" % (where, self.text, len(fields)))
        self.sets = []
        for value, (name, low, high, names) in zip(fields, _FIELDS):
            self.sets.append(_parse_field(value, name, low, high, names, "%s %r" % (where, self.text)))
        if 7 in self.sets[4]:
            self.sets[4] = (self.sets[4] - {7}) | {0}
        self.any_dom, self.any_dow = fields[2] == "*", fields[4] == "*"

    def matches(self, moment):
        minutes, hours, doms, months, dows = self.sets
        if moment.minute not in minutes or moment.hour not in hours or moment.month not in months:
            return False
        dom_ok, dow_ok = moment.day in doms, (moment.weekday() + 1) % 7 in dows
        if self.any_dom or self.any_dow:
            return dom_ok and dow_ok
        return dom_ok or dow_ok


def _parse_field(value, name, low, high, names, where):
    result = set()
    for part in value.lower().split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise FederationError("%s: %s step %r must be a positive number" % (where, name, step_text))
            step = int(step_text)
        if part == "*":
            first, last = low, high
        elif "-" in part:
            first, last = (_number(p, name, low, high, names, where) for p in part.split("-", 1))
        else:
            first = _number(part, name, low, high, names, where)
            last = high if step > 1 else first
        if first > last:
            raise FederationError("%s: %s range %s-%s runs backwards" % (where, name, first, last))
        result.update(range(first, last + 1, step))
    return result


def _number(text, name, low, high, names, where):
    number = names.get(text) if text in names else (int(text) if text.isdigit() else None)
    if number is None or not low <= number <= high:
        raise FederationError("%s: %s %r is not a number from %d to %d%s"
                              % (where, name, text, low, high, " or a name such as %s" % sorted(names)[0]
                                 if names else ""))
    return number


def parse_duration(value, where="duration"):
    """Minutes of a duration: '8h', '90m', '1h30m', '2d' or a number of minutes."""
    if isinstance(value, bool):
        raise FederationError("%s must be a duration such as 8h, 90m or 1h30m, got %r" % (where, value))
    if isinstance(value, int):
        minutes = value
    else:
        match = _DURATION.match(str(value or "").strip())
        if not match or not any(match.groups()):
            raise FederationError("%s must be a duration such as 8h, 90m or 1h30m, got %r" % (where, value))
        days, hours, mins = (int(g or 0) for g in match.groups())
        minutes = days * 1440 + hours * 60 + mins
    if not 0 < minutes <= MAX_DURATION_MINUTES:
        raise FederationError("%s must be more than 0 and at most 7d, got %r" % (where, value))
    return minutes


class SyncWindow:
    def __init__(self, raw, index):
        where = "gitops_sync_windows[%d]" % index
        if not isinstance(raw, dict):
            raise FederationError("%s must be a mapping with kind, schedule, duration (and timezone, scopes)" % where)
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise FederationError("%s: unknown key%s %s (known: %s)" % (where, "s" if len(unknown) > 1 else "",
                                                                        ", ".join(unknown), ", ".join(sorted(_KEYS))))
        self.name = str(raw.get("name") or "%s-%d" % (raw.get("kind") or "window", index))
        where = "%s (%s)" % (where, self.name)
        self.kind = raw.get("kind")
        if self.kind not in (ALLOW, DENY):
            raise FederationError("%s: kind must be allow or deny, got %r" % (where, self.kind))
        if not raw.get("schedule"):
            raise FederationError("%s: schedule (a cron expression) is required" % where)
        self.schedule = CronSchedule(raw["schedule"], "%s: schedule" % where)
        self.duration = parse_duration(raw.get("duration"), "%s: duration" % where)
        self.timezone_name = str(raw.get("timezone") or "UTC")
        self.timezone = _zone(self.timezone_name, where)
        self.projects = _names(raw.get("projects"), "%s: projects" % where)
        self.sources = _names(raw.get("sources"), "%s: sources" % where)
        self.clusters = _names(raw.get("clusters"), "%s: clusters" % where)
        labels = raw.get("cluster_labels") or {}
        if not isinstance(labels, dict):
            raise FederationError("%s: cluster_labels must be a mapping of label to value" % where)
        self.cluster_labels = dict((str(k), str(v)) for k, v in labels.items())
        self._opened = {}

    def applies(self, namespace, source, cluster, labels):
        if self.projects and namespace not in self.projects:
            return False
        if self.sources and source not in self.sources and "%s/%s" % (namespace, source) not in self.sources:
            return False
        if self.clusters and cluster not in self.clusters:
            return False
        labels = labels or {}
        return all(str(labels.get(k)) == v and k in labels for k, v in self.cluster_labels.items())

    def opened_at(self, now):
        """When the occurrence that is open at ``now`` (aware datetime) started, or None when it is closed."""
        minute = now.astimezone(datetime.timezone.utc).replace(second=0, microsecond=0)
        if minute not in self._opened:
            found = None
            for back in range(self.duration):
                start = minute - datetime.timedelta(minutes=back)
                if self.schedule.matches(start.astimezone(self.timezone)):
                    found = start
                    break
            self._opened[minute] = found
        return self._opened[minute]

    def describe(self):
        return "%s window %s (%r for %s, %s)" % (self.kind, self.name, self.schedule.text,
                                                 _format_minutes(self.duration), self.timezone_name)


def _zone(name, where):
    if name.upper() == "UTC":
        return datetime.timezone.utc
    if ZoneInfo is None:
        raise FederationError("%s: timezone %s needs Python 3.9 or later (zoneinfo); use UTC" % (where, name))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FederationError("%s: timezone %r is not a known IANA time zone (e.g. Europe/Berlin, UTC)"
                              % (where, name))


def _names(value, where):
    if value is None:
        return set()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise FederationError("%s must be a list of names" % where)
    return set(str(v) for v in value)


def _format_minutes(minutes):
    hours, mins = divmod(minutes, 60)
    return ("%dh" % hours if hours else "") + ("%dm" % mins if mins or not hours else "")


def parse_windows(raw):
    """SyncWindows from the inventory value (a list of mappings); raise naming the bad entry."""
    if raw in (None, "", []):
        return []
    if not isinstance(raw, list):
        raise FederationError("gitops_sync_windows must be a list of windows (kind, schedule, duration, ...)")
    windows = [SyncWindow(item, index) for index, item in enumerate(raw)]
    names = [w.name for w in windows]
    duplicates = sorted(set(n for n in names if names.count(n) > 1))
    if duplicates:
        raise FederationError("gitops_sync_windows: window names must be unique, %s is used twice" % duplicates[0])
    return windows


class Decision:
    """The windows' answer for one source on one cluster."""

    def __init__(self, blocked, reason, applicable):
        self.blocked = blocked
        self.reason = reason          # why it is blocked (or would be, when forced); None when open
        self.applicable = applicable  # windows that apply to this work

    @property
    def governed(self):
        return bool(self.applicable)


def decide(windows, now, namespace, source, cluster, labels):
    """Whether the windows block syncing ``namespace/source`` to ``cluster`` at ``now`` (an aware datetime)."""
    applicable = [w for w in windows if w.applies(namespace, source, cluster, labels)]

    def stamp(moment, window):
        return moment.astimezone(window.timezone).strftime("%Y-%m-%d %H:%M %Z")

    for window in applicable:
        if window.kind == DENY:
            opened = window.opened_at(now)
            if opened is not None:
                until = opened + datetime.timedelta(minutes=window.duration)
                return Decision(True, "inside %s, open until %s" % (window.describe(), stamp(until, window)),
                                applicable)
    allows = [w for w in applicable if w.kind == ALLOW]
    if allows and not any(w.opened_at(now) is not None for w in allows):
        return Decision(True, "outside every allow window (%s)" % "; ".join(w.describe() for w in allows),
                        applicable)
    return Decision(False, None, applicable)


def apply_windows(sources, windows, clusters, now, force=False):
    """Take the clusters the windows close out of each source's work (unless forced); note it on the source.

    ``sources`` are sync_steps.read_projects views (changed in place): a blocked cluster leaves
    ``clusters`` and its render's cluster list; renders left without a cluster are dropped. Each governed source
    gets ``window = {blocked: {cluster: reason}, forced: {cluster: reason}, open: [cluster]}``;
    ``window_closed`` is True when no cluster of a placed source is left to sync.
    """
    if not windows:
        return
    labels_of = dict((c.name, c.labels) for c in clusters)
    for source in sources:
        if source.get("suspended") or source.get("terminating") or source.get("errors"):
            continue
        note = dict(blocked={}, forced={}, open=[])
        for cluster in sorted(source.get("clusters") or {}):
            decision = decide(windows, now, source["namespace"], source["name"], cluster, labels_of.get(cluster))
            if not decision.governed:
                continue
            if not decision.blocked:
                note["open"].append(cluster)
            elif force:
                note["forced"][cluster] = decision.reason
            else:
                note["blocked"][cluster] = decision.reason
        if not (note["blocked"] or note["forced"] or note["open"]):
            continue
        source["window"] = note
        for cluster in note["blocked"]:
            del source["clusters"][cluster]
            for render in source.get("renders") or []:
                if cluster in (render.get("clusters") or []):
                    render["clusters"].remove(cluster)
        if note["blocked"]:
            # Keep each render's id (the clusters' settings point at it); a render no cluster uses is not fetched.
            used = set(settings["render"] for settings in source["clusters"].values())
            source["renders"] = [r for r in source.get("renders") or [] if r["id"] in used]
            source["window_closed"] = not source["clusters"]


def closed_secrets(windows, projects, clusters, now, force=False):
    """{namespace: {cluster: reason}} where the windows keep a project's federated secrets from being propagated.

    Windows scoped to ``sources`` do not govern secrets (they belong to the project, not to a source).
    """
    closed = {}
    if not windows or force:
        return closed
    for namespace in projects:
        for cluster in clusters:
            decision = decide(windows, now, namespace, None, cluster.name, cluster.labels)
            if decision.blocked:
                closed.setdefault(namespace, {})[cluster.name] = decision.reason
    return closed


def window_condition(note):
    """(status, reason, message) of a source's SyncWindow condition, and its Events [(type, reason, message)]."""
    blocked, forced = note.get("blocked") or {}, note.get("forced") or {}
    events = []
    for cluster, reason in sorted(blocked.items()):
        events.append(("Normal", "SyncWindowClosed", "sync to %s skipped: %s (run with -e force=true to override)"
                       % (cluster, reason)))
    for cluster, reason in sorted(forced.items()):
        events.append(("Warning", "SyncWindowOverridden", "sync to %s forced (force=true) although %s"
                       % (cluster, reason)))
    if blocked:
        message = "; ".join("%s: %s" % (c, r) for c, r in sorted(blocked.items()))
        return ("False", "SyncWindowClosed", "sync skipped on " + message), events
    if forced:
        message = "; ".join("%s: %s" % (c, r) for c, r in sorted(forced.items()))
        return ("True", "Forced", "sync forced (force=true) on " + message), events
    return ("True", "SyncWindowOpen", "sync window open on %s" % ", ".join(note.get("open") or [])), events

# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The change set: one entry per object and what the engine did (or would do) to it.

It is the engine's currency: modules return it, status is written from its counts, events
summarise it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.gitops.federation.plugins.module_utils.apply.drift import for_display
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import dump_yaml

CREATED = "created"
CONFIGURED = "configured"
RECREATED = "recreated"  # an immutable field changed and the object asked for it: deleted, then created
UNCHANGED = "unchanged"
PRUNED = "pruned"      # left the bundle, deleted
DELETED = "deleted"    # deleted by state=absent (teardown)
SKIPPED = "skipped"    # left the bundle, but no longer carries our owner label: never deleted
ORPHANED = "orphaned"  # left the bundle with prune disabled: left in place, forgotten
FAILED = "failed"

ACTIONS = (CREATED, CONFIGURED, RECREATED, UNCHANGED, PRUNED, DELETED, SKIPPED, ORPHANED, FAILED)
WRITES = frozenset([CREATED, CONFIGURED, RECREATED, PRUNED, DELETED])


class Change:
    __slots__ = ("ref", "api_version", "action", "before", "after", "message")

    def __init__(self, ref, api_version, action, before=None, after=None, message=None):
        self.ref = ref
        self.api_version = api_version
        self.action = action
        self.before = before
        self.after = after
        self.message = message

    def as_dict(self):
        entry = dict(subject=str(self.ref), apiVersion=self.api_version, kind=self.ref.kind,
                     namespace=self.ref.namespace or None, name=self.ref.name, action=self.action)
        if self.message:
            entry["message"] = self.message
        return entry

    def diff(self):
        """An Ansible diff entry with Secret values redacted on both sides."""
        return dict(
            before_header="%s (live)" % (self.ref,), after_header="%s (%s)" % (self.ref, self.action),
            before=dump_yaml(for_display(self.before, self.after)) if self.before else "",
            after=dump_yaml(for_display(self.after, self.before)) if self.after else "",
        )


class ChangeSet:
    """Thread-safe list of changes (the engine records from a worker pool)."""

    def __init__(self):
        self._changes = []
        self._lock = threading.Lock()

    def add(self, ref, api_version, action, before=None, after=None, message=None):
        with self._lock:
            self._changes.append(Change(ref, api_version, action, before, after, message))

    def __iter__(self):
        return iter(self._changes)

    def __len__(self):
        return len(self._changes)

    @property
    def changed(self):
        return any(c.action in WRITES for c in self._changes)

    def counts(self):
        counts = dict((action, 0) for action in ACTIONS)
        for change in self._changes:
            counts[change.action] += 1
        return counts

    def entries(self):
        return [c.as_dict() for c in sorted(self._changes, key=lambda c: (ACTIONS.index(c.action), c.ref))]

    def diffs(self):
        return [c.diff() for c in self._changes if c.action in WRITES]

    def field_changes(self):
        """Entries of the writes with, for configured objects, the owned fields that change (field_diff)."""
        from ansible_collections.gitops.federation.plugins.module_utils.apply.field_diff import field_changes

        entries = []
        for change in sorted(self._changes, key=lambda c: (ACTIONS.index(c.action), c.ref)):
            if change.action not in WRITES:
                continue
            entry = change.as_dict()
            if change.action in (CONFIGURED, RECREATED) and change.before is not None and change.after is not None:
                entry["fields"] = field_changes(change.before, change.after)
            entries.append(entry)
        return entries

    def summary(self):
        """One line for messages and events, e.g. 'created 2, configured 1, unchanged 7'."""
        counts = self.counts()
        parts = ["%s %d" % (action, counts[action]) for action in ACTIONS if counts[action]]
        return ", ".join(parts) if parts else "no objects"

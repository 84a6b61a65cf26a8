# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One sync at a time per source: a coordination.k8s.io Lease on the management cluster.

A project's federated secrets, which every sync of the project propagates, have a Lease of their own.

The Lease names its holder and expires (renewTime + leaseDurationSeconds), so a run that crashed
does not lock the source forever. Updates carry the resourceVersion they read, so two runs racing
for an expired lease cannot both win.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import time

from ansible_collections.gitops.federation.plugins.module_utils.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.objects import MANAGED_BY_LABEL, MANAGED_BY_VALUE

LEASE_API = "coordination.k8s.io/v1"


# Source leases are gitops-sync-<source>; this name cannot collide with one of them.
SECRETS_LEASE = "gitops-secrets-sync"


def lease_name(source=None):
    """The Lease guarding a source, or (source None) the project's federated secrets."""
    return "gitops-sync-%s" % source if source else SECRETS_LEASE


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _format(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text):
    if not text:
        return None
    text = text.rstrip("Z")
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.datetime.strptime(text, pattern).replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            continue
    return None


class LeaseHeld(FederationError):
    """Another run holds the lease; the message says who, since when and until when."""


def describe(spec):
    renew = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    expires = renew + datetime.timedelta(seconds=spec.get("leaseDurationSeconds") or 0) if renew else None
    return "held by %s since %s (expires %s)" % (spec.get("holderIdentity"), spec.get("acquireTime"),
                                                 _format(expires) if expires else "never")


def expired(spec, now=None):
    renew = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
    if not spec.get("holderIdentity") or renew is None:
        return True
    return (now or _now()) >= renew + datetime.timedelta(seconds=spec.get("leaseDurationSeconds") or 0)


class SyncLease:
    def __init__(self, client, namespace, source, holder, duration=900):
        self.client = client
        self.namespace = namespace
        self.name = lease_name(source)
        self.subject = "source %s/%s" % (namespace, source) if source else "the federated secrets of %s" % namespace
        self.holder = holder
        self.duration = int(duration)
        self.resource = client.discovery().find(LEASE_API, "Lease")

    def read(self):
        return self.client.get(self.resource, self.name, self.namespace)

    def acquire(self, wait_timeout=0, check_mode=False):
        """Take (or renew) the lease; return (changed, spec). Raise LeaseHeld if another live run holds it."""
        deadline = time.monotonic() + wait_timeout
        while True:
            live = self.read()
            spec = (live or {}).get("spec") or {}
            if live is None or spec.get("holderIdentity") == self.holder or expired(spec):
                if check_mode:
                    return True, spec
                try:
                    return True, self._write(live)
                except ApiError as err:
                    if not err.conflict:
                        raise
                    # Someone else wrote it between our read and write: read again.
                    continue
            if time.monotonic() >= deadline:
                raise LeaseHeld("%s: being synced by another run: lease %s is %s"
                                % (self.subject, self.name, describe(spec)),
                                holder=spec.get("holderIdentity"), lease=self.name)
            time.sleep(1)

    def release(self, check_mode=False):
        """Give the lease up if we hold it; return changed."""
        live = self.read()
        spec = (live or {}).get("spec") or {}
        if live is None or spec.get("holderIdentity") != self.holder:
            return False
        if not check_mode:
            self.client.delete(self.resource, self.name, self.namespace, uid=live["metadata"]["uid"])
        return True

    def _write(self, live):
        now = _format(_now())
        spec = {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration, "renewTime": now}
        previous = (live or {}).get("spec") or {}
        spec["acquireTime"] = previous.get("acquireTime") if previous.get("holderIdentity") == self.holder else now
        body = {"apiVersion": LEASE_API, "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}},
                "spec": spec}
        if live is None:
            return self.client.request("POST", self.resource.path(self.namespace), body=body)["spec"]
        body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        return self.client.request("PUT", self.resource.path(self.namespace, self.name), body=body)["spec"]

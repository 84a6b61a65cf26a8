# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One sync at a time per source: a coordination.k8s.io Lease on the management cluster.

A project's federated secrets, which every sync of the project propagates, have a Lease of their own.

The Lease names its holder and expires (renewTime + leaseDurationSeconds), so a run that crashed
does not lock the source forever. Updates carry the resourceVersion they read, so two runs racing
for an expired lease cannot both win.

A run that works longer than the duration (sources applied one after another, each waiting for
health) keeps its leases with ``LeaseKeeper``: a background thread renews them every duration/3 and
records a lease it finds taken by another holder, so the work fails loudly instead of carrying on
while another run syncs the same source.

A renewTime that cannot be parsed never counts as expired: taking such a lease could run two syncs
at once, so it is an error that names the Lease to delete.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re
import threading
import time

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import MANAGED_BY_LABEL, MANAGED_BY_VALUE

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


# metav1.MicroTime as the API server writes it ("2026-11-27T12:00:00.123456Z"), and what other clients may
# write: no fraction, up to nanoseconds, or a numeric UTC offset.
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


class LeaseTimeError(FederationError):
    """A Lease time that cannot be parsed: the lease cannot be judged expired or not."""


def _parse(text, field="time"):
    """A Lease time as an aware UTC datetime; None when unset; LeaseTimeError when unparsable.

    The shape is checked against RFC 3339 first (fromisoformat alone would also take a date without a time or
    a time without a zone), the fraction is cut to the microseconds Python keeps and ``Z`` spelled as an
    offset so that datetime.fromisoformat reads it on every supported Python. An unreadable time is an error,
    never an expired lease: taking a lease whose holder may still be running would let two syncs write at once.
    """
    if not text:
        return None
    match = _TIME.match(str(text).strip())
    moment = None
    if match:
        zone = "+00:00" if match.group(3) == "Z" else match.group(3)
        fraction = "." + (match.group(2) or "").ljust(6, "0")[:6]
        try:
            moment = datetime.datetime.fromisoformat(match.group(1) + fraction + zone)
        except ValueError:
            moment = None
    if moment is None:
        raise LeaseTimeError("%s %r is not an RFC 3339 time; the lease cannot be judged expired or held" % (field, text))
    return moment.astimezone(datetime.timezone.utc)


def _renewed(spec):
    return _parse(spec.get("renewTime"), "renewTime") or _parse(spec.get("acquireTime"), "acquireTime")


class LeaseHeld(FederationError):
    """Another run holds the lease; the message says who, since when and until when."""


def describe(spec):
    try:
        renew = _renewed(spec)
    except LeaseTimeError:
        return "held by %s since %s (renewTime %r unreadable)" % (spec.get("holderIdentity"), spec.get("acquireTime"),
                                                                  spec.get("renewTime"))
    expires = renew + datetime.timedelta(seconds=spec.get("leaseDurationSeconds") or 0) if renew else None
    return "held by %s since %s (expires %s)" % (spec.get("holderIdentity"), spec.get("acquireTime"),
                                                 _format(expires) if expires else "never")


def expired(spec, now=None):
    """Whether a Lease spec is free to take. Raises LeaseTimeError when its times cannot be read."""
    if not spec.get("holderIdentity"):
        return True
    renew = _renewed(spec)
    if renew is None:
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

    def _expired(self, spec):
        try:
            return expired(spec)
        except LeaseTimeError as err:
            raise LeaseTimeError("%s: Lease %s/%s: %s. Delete the Lease if no run holds it (kubectl delete lease -n "
                                 "%s %s)" % (self.subject, self.namespace, self.name, err.msg, self.namespace,
                                             self.name), lease=self.name)

    def renew(self):
        """Renew the lease this holder has; return None, or a description of who took it from us.

        A conflict means someone wrote the Lease between our read and write (another task of this run
        renewing it, or another run taking it): read again and decide on what is there now.
        """
        for unused in range(5):
            live = self.read()
            spec = (live or {}).get("spec") or {}
            if live is None:
                return "%s: Lease %s/%s was deleted while this run held it" % (self.subject, self.namespace, self.name)
            if spec.get("holderIdentity") != self.holder:
                return ("%s: Lease %s/%s was taken by another run: it is now %s"
                        % (self.subject, self.namespace, self.name, describe(spec)))
            try:
                self._write(live)
                return None
            except ApiError as err:
                if not err.conflict:
                    raise
        return None  # written by others five times in a row, each time still ours: it is renewed

    def acquire(self, wait_timeout=0, check_mode=False):
        """Take (or renew) the lease; return (changed, spec). Raise LeaseHeld if another live run holds it."""
        deadline = time.monotonic() + wait_timeout
        while True:
            live = self.read()
            spec = (live or {}).get("spec") or {}
            if live is None or spec.get("holderIdentity") == self.holder or self._expired(spec):
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


class LeaseLost(FederationError):
    """A lease this run held was taken, deleted or could not be renewed while the run worked."""


class LeaseKeeper:
    """Keep leases held while a long piece of work runs: ``with LeaseKeeper(leases) as keeper: ...``.

    On entry every lease must still be ours (renewed once, at once): work never starts under a lease
    another run took meanwhile (LeaseLost). Then a daemon thread renews each lease every duration/3
    (``interval`` overrides it, for tests) until the block exits. A lease found taken or deleted is
    recorded in ``lost`` and no longer renewed; a renewal that fails (API error) is retried at the next
    tick and recorded only if the lease would have expired by then. ``check()`` raises LeaseLost when
    anything was lost; the caller reports it with its results.
    """

    def __init__(self, leases, interval=None):
        self.leases = list(leases)
        durations = [lease.duration for lease in self.leases] or [900]
        self.interval = float(interval) if interval else max(min(durations) / 3.0, 0.2)
        self.lost = []
        self.renewals = 0
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()
        self._last_renewed = {}

    def __enter__(self):
        for lease in self.leases:
            taken = lease.renew()
            if taken:
                raise LeaseLost("%s; nothing was done" % taken, lease=lease.name)
            self._last_renewed[lease.name] = time.monotonic()
        if self.leases:
            self._thread = threading.Thread(target=self._run, name="lease-keeper")
            self._thread.daemon = True
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, traceback):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return False

    def _run(self):
        while not self._stop.wait(self.interval):
            for lease in list(self.leases):
                self._renew_one(lease)

    def _renew_one(self, lease):
        try:
            taken = lease.renew()
        except Exception as err:  # noqa: BLE001 - any failure of the thread must reach the work's result
            if time.monotonic() - self._last_renewed.get(lease.name, 0) < lease.duration:
                return  # still ours for a while: try again at the next tick
            taken = "%s: Lease %s/%s could not be renewed before it expired: %s" % (
                lease.subject, lease.namespace, lease.name, getattr(err, "msg", None) or err)
        with self._lock:
            if taken:
                self.lost.append(taken)
                self.leases.remove(lease)
            else:
                self.renewals += 1
                self._last_renewed[lease.name] = time.monotonic()

    def check(self):
        """Raise LeaseLost if a lease was lost while the work ran."""
        with self._lock:
            lost = list(self.lost)
        if lost:
            raise LeaseLost("; ".join(lost) + "; another run may have synced meanwhile: rerun once it is done",
                            lost_leases=lost)

# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The federated objects on the management cluster: read them, write their spec, write their status.

Spec writes (FederatedSecret, FederatedGitRepository, FederatedKustomization and the Secrets that
hold federated values) use server-side apply under the field manager ``gitops-federation-config``
and are made only when the live object differs: the fields this manager owns are compared first
(no request), then a server-side dry run decides, as the apply engine does for attached clusters.
Status is written through the status subresource with optimistic concurrency (the caller recomputes
on a conflict), so two recordings never overwrite each other's clusters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError
from ansible_collections.gitops.federation.plugins.module_utils.apply.drift import drift_of, for_display, without_nulls
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import (
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, dump_yaml)

GROUP = "types.kubefed.io"
VERSION = "v1beta1"
API_VERSION = "%s/%s" % (GROUP, VERSION)
FEDERATED_SECRET = "FederatedSecret"
FEDERATED_GIT_REPOSITORY = "FederatedGitRepository"
FEDERATED_KUSTOMIZATION = "FederatedKustomization"
KINDS = (FEDERATED_SECRET, FEDERATED_GIT_REPOSITORY, FEDERATED_KUSTOMIZATION)

CONFIG_FIELD_MANAGER = "gitops-federation-config"
STATUS_FIELD_MANAGER = "gitops-federation-status"
# Label on the Secrets that hold the values of a FederatedSecret on the management cluster.
FEDERATED_SECRET_LABEL = "gitops.federation/federated-secret"

CREATED = "created"
CONFIGURED = "configured"
UNCHANGED = "unchanged"
DELETED = "deleted"
ABSENT = "absent"


class ConfigChange:
    """What a spec write did (or would do in check mode) to one object."""

    def __init__(self, action, before=None, after=None, subject=None):
        self.action = action
        self.before = before
        self.after = after
        self.subject = subject

    @property
    def changed(self):
        return self.action in (CREATED, CONFIGURED, DELETED)

    def diff(self):
        """An Ansible diff entry; Secret values are redacted on both sides."""
        return dict(before_header="%s (live)" % self.subject, after_header="%s (%s)" % (self.subject, self.action),
                    before=dump_yaml(_shown(self.before, self.after)) if self.before else "",
                    after=dump_yaml(_shown(self.after, self.before)) if self.after else "")


def _shown(obj, other):
    shown = for_display(obj, other)
    shown.pop("status", None)
    for key in ("uid", "generation", "resourceVersion", "creationTimestamp", "managedFields"):
        shown.get("metadata", {}).pop(key, None)
    return shown


def managed_labels(labels=None):
    merged = dict(labels or {})
    merged[MANAGED_BY_LABEL] = MANAGED_BY_VALUE
    return merged


class FederationStore:
    """Access to the federated objects (and Secrets) of the management cluster."""

    def __init__(self, client):
        self.client = client
        self._resources = {}

    def resource(self, kind):
        if kind not in self._resources:
            api_version = "v1" if kind in ("Secret", "Event") else API_VERSION
            found = self.client.discovery().find(api_version, kind)
            if found is None:
                raise FederationError("%s (%s) is not served by the management cluster %s: install the CRDs first "
                                      "(role gitops.federation.crds)" % (kind, api_version, self.client.server))
            self._resources[kind] = found
        return self._resources[kind]

    def get(self, kind, namespace, name):
        return self.client.get(self.resource(kind), name, namespace)

    def list(self, kind, namespace):
        return sorted(self.client.list(self.resource(kind), namespace),
                      key=lambda obj: obj["metadata"]["name"])

    # -- spec writes ---------------------------------------------------------------------------

    def apply(self, desired, check_mode=False, live=None, fetch=True):
        """Server-side apply desired when it differs from the live object; return a ConfigChange."""
        kind, metadata = desired["kind"], desired["metadata"]
        resource = self.resource(kind)
        subject = "%s %s/%s" % (kind, metadata.get("namespace"), metadata["name"])
        if fetch and live is None:
            live = self.client.get(resource, metadata["name"], metadata.get("namespace"))
        desired = without_nulls(desired)
        try:
            if live is None:
                after = self.client.apply(resource, desired, CONFIG_FIELD_MANAGER, force=True, dry_run=check_mode)
                return ConfigChange(CREATED, None, after, subject)
            after = drift_of(desired, live, lambda: self.client.apply(
                resource, desired, CONFIG_FIELD_MANAGER, force=True, dry_run=True), CONFIG_FIELD_MANAGER)
            if after is None:
                return ConfigChange(UNCHANGED, live, live, subject)
            if not check_mode:
                after = self.client.apply(resource, desired, CONFIG_FIELD_MANAGER, force=True)
            return ConfigChange(CONFIGURED, live, after, subject)
        except ApiError as err:
            raise FederationError("%s: the management cluster refused it: %s" % (subject, _describe(err)),
                                  status=err.status, reason=err.reason)

    def delete(self, kind, namespace, name, check_mode=False, live=None):
        """Delete an object if it exists; return a ConfigChange (deleted or absent)."""
        resource = self.resource(kind)
        subject = "%s %s/%s" % (kind, namespace, name)
        if live is None:
            live = self.client.get(resource, name, namespace)
        if live is None:
            return ConfigChange(ABSENT, None, None, subject)
        try:
            self.client.delete(resource, name, namespace, uid=live["metadata"].get("uid"), dry_run=check_mode)
        except ApiError as err:
            raise FederationError("%s: delete refused: %s" % (subject, _describe(err)), status=err.status)
        return ConfigChange(DELETED, live, None, subject)

    def merge_patch(self, kind, namespace, name, patch, field_manager, check_mode=False):
        """A JSON merge patch of one object under its own field manager (a kubectl-patch-like edit that a later
        server-side apply of the spec does not take back); returns the patched object (the server's dry-run
        result in check mode)."""
        resource = self.resource(kind)
        query = {"fieldManager": field_manager}
        if check_mode:
            query["dryRun"] = "All"
        try:
            return self.client.request("PATCH", resource.path(namespace, name), body=patch, query=query,
                                       content_type="application/merge-patch+json")
        except ApiError as err:
            raise FederationError("cannot update %s %s/%s: %s" % (kind, namespace, name, _describe(err)),
                                  status=err.status)

    # -- status --------------------------------------------------------------------------------

    def write_status(self, obj, status):
        """Replace obj's status through the status subresource; raises ApiError (409) when obj changed meanwhile."""
        resource = self.resource(obj["kind"])
        body = copy.deepcopy(obj)
        body["status"] = status
        metadata = obj["metadata"]
        return self.client.request("PUT", resource.path(metadata.get("namespace"), metadata["name"], "status"),
                                   query={"fieldManager": STATUS_FIELD_MANAGER}, body=body)


def _describe(err):
    if err.causes:
        return "; ".join("%s: %s" % (c.get("field", ""), c.get("message", "")) for c in err.causes)
    return err.msg


def subject_of(obj):
    metadata = obj.get("metadata") or {}
    return "%s %s/%s" % (obj.get("kind"), metadata.get("namespace"), metadata.get("name"))


def spec_view(obj):
    """The parts of a federated object modules return (no status, no server bookkeeping)."""
    if obj is None:
        return None
    metadata = obj.get("metadata") or {}
    return dict(apiVersion=obj.get("apiVersion"), kind=obj.get("kind"),
                metadata=dict((k, metadata[k]) for k in ("name", "namespace", "labels", "annotations", "generation")
                              if k in metadata),
                spec=copy.deepcopy(obj.get("spec") or {}))

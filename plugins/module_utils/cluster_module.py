# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module base: what every module of the collection shares, in one place.

- ``GitopsModule``: an AnsibleModule whose ``run(run_module)`` is the one place a FederationError meets
  Ansible (``fail_json`` with the error's message and details), and whose every exit hides credentials among
  the arguments (Secret values, kubeconfig credentials), argument errors included.
- ``ClusterModule``: a GitopsModule for modules that talk to a cluster: the shared connection options
  (auth_options.AUTH_ARG_SPEC, documented once in doc_fragments/cluster_auth.py), the client
  (``module.client()``, with the run's discovery cache when the module has a ``cache_dir`` option), the
  management cluster's client and FederationStore, check mode handed to the engine (``sync_options``) and
  diff/changed of configuration writes (``config_result``).
- ``main(argument_spec, run_module, ...)``: what each module's ``main()`` calls.

A module file is DOCUMENTATION / EXAMPLES / RETURN, ``argspec()``, ``run_module(module)`` (returns the
result, or exits itself) and a one-line ``main()``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gitops.federation.plugins.module_utils.k8s.auth_options import AUTH_ARG_SPEC, auth_from_params
from ansible_collections.gitops.federation.plugins.module_utils.apply.drift import REDACTED
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.apply.objects import HAS_YAML


# Fields of a kubeconfig user entry (and of its auth-provider config) that are credentials.
KUBECONFIG_CREDENTIAL_FIELDS = ("token", "password", "client-key-data", "client-certificate-data", "id-token",
                                "refresh-token", "access-token", "client-secret")


class GitopsModule(AnsibleModule):
    """An AnsibleModule that turns FederationError into fail_json and hides credentials among its arguments
    whenever it returns.

    Ansible echoes a module's arguments back (``invocation``) with every result, failures included, and
    argument parsing can fail inside ``AnsibleModule.__init__``, before module code could redact anything. So
    the redaction happens here, at the last moment, on every path: Secret manifests lose their values, and the
    credentials of a kubeconfig given as a mapping become no_log values (masked wherever they appear, as
    kubernetes.core does).
    """

    def run(self, run_module):
        """Call run_module(self) and exit with the result it returns (None: it exited itself). A FederationError
        becomes a failure carrying its details: modules read as the happy path."""
        try:
            result = run_module(self)
        except FederationError as err:
            self.fail_json(msg=err.msg, **err.details)
        if result is not None:
            self.exit_json(**result)

    def exit_json(self, **kwargs):
        self._hide_credentials()
        super(GitopsModule, self).exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        self._hide_credentials()
        super(GitopsModule, self).fail_json(msg, **kwargs)

    def _hide_credentials(self):
        params = getattr(self, "params", None)
        if not isinstance(params, dict):
            return
        self.no_log_values.update(kubeconfig_credentials(params))
        redact_secret_arguments([params])


class ClusterModule(GitopsModule):
    """A GitopsModule with the shared connection options (build it with cluster_module() or main())."""

    def client(self, name=None, auth=None):
        """The client of the task's cluster, or of the cluster described by auth (e.g. params["management"])."""
        from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import connect

        return connect(auth_from_params(self.params if auth is None else auth), name=name,
                       cache_dir=self.params.get("cache_dir"))

    def management_client(self):
        """The client of the cluster named by the module's ``management`` option."""
        return self.client("management", self.params["management"])

    def store(self, client=None):
        """The FederationStore of the task's cluster (the management cluster for configuration modules)."""
        from ansible_collections.gitops.federation.plugins.module_utils.federation.store import FederationStore

        return FederationStore(client or self.client())

    def sync_options(self, **options):
        """Engine options with the module's check mode (dry-run, nothing written)."""
        from ansible_collections.gitops.federation.plugins.module_utils.apply.engine import SyncOptions

        return SyncOptions(check_mode=self.check_mode, **options)

    def config_result(self, changes, **result):
        """The result of configuration writes (FederationStore ConfigChanges): changed, and diffs in diff mode."""
        result["changed"] = any(change.changed for change in changes)
        if self._diff:
            result["diff"] = [change.diff() for change in changes if change.changed]
        return result


def kubeconfig_credentials(params):
    """The credential values of every kubeconfig given as a mapping in params (also under management)."""
    values = set()
    for holder in (params, params.get("management")):
        kubeconfig = holder.get("kubeconfig") if isinstance(holder, dict) else None
        if not isinstance(kubeconfig, dict):
            continue
        for user in kubeconfig.get("users") or []:
            entry = user.get("user") if isinstance(user, dict) else None
            if not isinstance(entry, dict):
                continue
            provider = entry.get("auth-provider") if isinstance(entry.get("auth-provider"), dict) else {}
            for fields in (entry, provider.get("config") if isinstance(provider.get("config"), dict) else {}):
                for field in KUBECONFIG_CREDENTIAL_FIELDS:
                    if isinstance(fields.get(field), str) and fields[field]:
                        values.add(fields[field])
            execution = entry.get("exec") if isinstance(entry.get("exec"), dict) else {}
            for variable in execution.get("env") or []:
                if isinstance(variable, dict) and isinstance(variable.get("value"), str) and variable["value"]:
                    values.add(variable["value"])
    return values


def cluster_module(argument_spec, **kwargs):
    """A ClusterModule with the shared connection options; fails early if a required library is missing."""
    # Imported here: the kubernetes library is loaded by cluster modules only, not by git_render or scm_webhook.
    from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import (
        HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR)

    spec = dict(AUTH_ARG_SPEC)
    spec.update(argument_spec)
    module = ClusterModule(argument_spec=spec, **kwargs)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception="".join(
            traceback.format_exception_only(type(KUBERNETES_IMPORT_ERROR), KUBERNETES_IMPORT_ERROR)))
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    return module


def redact_secret_arguments(objects):
    """Replace the values of Secret manifests found anywhere in objects (lists, mappings) by a placeholder,
    in place; a Secret inside a List item is found too.

    Registering the values as no_log values instead would make Ansible mask every occurrence of them in the
    whole result, corrupting unrelated strings that merely contain a short value.
    """
    pending = list(objects or [])
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            if value.get("kind") == "Secret":
                for field in ("data", "stringData"):
                    if isinstance(value.get(field), dict):
                        value[field] = dict((key, REDACTED) for key in value[field])
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def main(argument_spec, run_module, cluster=True, **kwargs):
    """Build the module (a ClusterModule with the connection options, or a GitopsModule with cluster=False;
    check mode supported unless said otherwise) and run run_module with it."""
    kwargs.setdefault("supports_check_mode", True)
    if cluster:
        module = cluster_module(argument_spec, **kwargs)
    else:
        module = GitopsModule(argument_spec=argument_spec, **kwargs)
    module.run(run_module)


def cluster_client(module, name=None):
    return module.client(name)


def request_counts(client):
    """Requests made, by verb, plus the total of writes (dry runs excluded)."""
    counts = dict(client.requests)
    counts["writes"] = client.write_requests
    return counts


def sync_return(result, client, module):
    """Module return values from an engine SyncResult."""
    returned = dict(
        changed=result.changed,
        change_set=result.change_set.entries(),
        counts=result.change_set.counts(),
        summary=result.change_set.summary(),
        inventory=dict(name=result.inventory.name, namespace=result.inventory.namespace,
                       revision=result.inventory.revision, objects=len(result.inventory.entries)),
        health=result.health,
        api_requests=request_counts(client),
    )
    if module._diff:
        returned["diff"] = result.change_set.diffs()
    return returned

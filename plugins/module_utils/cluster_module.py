# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every cluster-facing module shares: the AnsibleModule with auth options, library checks,
the client, and turning an engine result into module return values."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gitops.federation.plugins.module_utils.auth_options import AUTH_ARG_SPEC, auth_from_params
from ansible_collections.gitops.federation.plugins.module_utils.client import (
    HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR, ClusterClient)
from ansible_collections.gitops.federation.plugins.module_utils.drift import REDACTED
from ansible_collections.gitops.federation.plugins.module_utils.objects import HAS_YAML


# Fields of a kubeconfig user entry (and of its auth-provider config) that are credentials.
KUBECONFIG_CREDENTIAL_FIELDS = ("token", "password", "client-key-data", "client-certificate-data", "id-token",
                                "refresh-token", "access-token", "client-secret")


class ClusterModule(AnsibleModule):
    """An AnsibleModule that hides credentials among its arguments whenever it returns.

    Ansible echoes a module's arguments back (``invocation``) with every result, failures included, and
    argument parsing can fail inside ``AnsibleModule.__init__``, before module code could redact anything. So
    the redaction happens here, at the last moment, on every path: Secret manifests lose their values, and the
    credentials of a kubeconfig given as a mapping become no_log values (masked wherever they appear, as
    kubernetes.core does).
    """

    def exit_json(self, **kwargs):
        self._hide_credentials()
        super(ClusterModule, self).exit_json(**kwargs)

    def fail_json(self, msg, **kwargs):
        self._hide_credentials()
        super(ClusterModule, self).fail_json(msg, **kwargs)

    def _hide_credentials(self):
        params = getattr(self, "params", None)
        if not isinstance(params, dict):
            return
        self.no_log_values.update(kubeconfig_credentials(params))
        redact_secret_arguments([params])


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


def cluster_client(module, name=None):
    return ClusterClient(auth_from_params(module.params), name=name)


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

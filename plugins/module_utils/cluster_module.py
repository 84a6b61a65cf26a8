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


def cluster_module(argument_spec, **kwargs):
    """An AnsibleModule with the shared connection options; fails early if a required library is missing."""
    spec = dict(AUTH_ARG_SPEC)
    spec.update(argument_spec)
    module = AnsibleModule(argument_spec=spec, **kwargs)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception="".join(
            traceback.format_exception_only(type(KUBERNETES_IMPORT_ERROR), KUBERNETES_IMPORT_ERROR)))
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    return module


def redact_secret_arguments(objects):
    """Replace the values of Secret manifests in module arguments by a placeholder, in place.

    Ansible echoes a module's arguments back in its result (``invocation``); the engine works on its own
    copy, so the arguments can be redacted before the module returns. Registering the values as no_log
    values instead would make Ansible mask every occurrence of them in the whole result, corrupting
    unrelated strings that merely contain a short value.
    """
    for obj in objects or []:
        if isinstance(obj, dict) and obj.get("kind") == "Secret":
            for field in ("data", "stringData"):
                if isinstance(obj.get(field), dict):
                    obj[field] = dict((key, REDACTED) for key in obj[field])


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

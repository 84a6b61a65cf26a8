#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gitops_suspend
short_description: Suspend or resume a GitOps source, or mark it as terminating
version_added: 0.1.0
description:
  - Flips C(spec.template.spec.suspend) of a FederatedKustomization on the management cluster, exactly what
    C(kubectl patch federatedkustomization NAME --type merge -p '{"spec":{"template":{"spec":{"suspend":true}}}}')
    does. While a source is suspended the sync leaves its clusters alone, so hand fixes made with kubectl or
    helm survive; resuming lets the next sync revert them.
  - With O(terminating=true) the source is also annotated C(gitops.federation/terminating); the teardown playbook
    sets it before removing the source's objects, so no sync re-applies a source that is being deleted.
  - Only the suspension and the annotation are touched; the rest of the source is left as it is.
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
attributes:
  check_mode:
    support: full
    description: Reports whether the source would change; writes nothing.
  diff_mode:
    support: full
    description: Shows the suspension and terminating annotation before and after.
options:
  name:
    description: Name of the GitOps source (the FederatedKustomization).
    type: str
    required: true
  namespace:
    description: The project namespace.
    type: str
    required: true
  state:
    description: V(suspended) stops syncing the source; V(resumed) lets syncs apply it again.
    type: str
    choices: [suspended, resumed]
    required: true
  terminating:
    description:
      - Set (V(true)) or remove (V(false)) the C(gitops.federation/terminating) annotation. Left alone when omitted.
    type: bool
"""

EXAMPLES = r"""
- name: Suspend podinfo for live debugging
  gitops.federation.gitops_suspend:
    kubeconfig: /etc/clusters/management.kubeconfig
    namespace: team-a
    name: podinfo
    state: suspended

- name: Resume it
  gitops.federation.gitops_suspend:
    kubeconfig: /etc/clusters/management.kubeconfig
    namespace: team-a
    name: podinfo
    state: resumed
"""

RETURN = r"""
suspended:
  description: Whether the source is suspended after the task.
  returned: always
  type: bool
  sample: true
terminating:
  description: Whether the source carries the terminating annotation after the task.
  returned: always
  type: bool
  sample: false
"""

from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.store import FEDERATED_KUSTOMIZATION
from ansible_collections.gitops.federation.plugins.module_utils.federation.gitops_sources import TERMINATING_ANNOTATION

SUSPEND_FIELD_MANAGER = "gitops-federation-suspend"


def argspec():
    return dict(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        state=dict(type="str", choices=["suspended", "resumed"], required=True),
        terminating=dict(type="bool"),
    )


def _state(obj):
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return dict(suspended=bool(spec.get("suspend")), terminating=TERMINATING_ANNOTATION in annotations)


def run_module(module):
    params = module.params
    store = module.store()
    live = store.get(FEDERATED_KUSTOMIZATION, params["namespace"], params["name"])
    if live is None:
        raise FederationError("GitOps source %s/%s does not exist (no FederatedKustomization of that name)"
                              % (params["namespace"], params["name"]))
    before = _state(live)
    after = dict(before, suspended=params["state"] == "suspended")
    if params["terminating"] is not None:
        after["terminating"] = params["terminating"]
    result = dict(changed=after != before, **after)
    if module._diff:
        result["diff"] = dict(before=before, after=after)
    if result["changed"] and not module.check_mode:
        patch = {"spec": {"template": {"spec": {"suspend": after["suspended"]}}}}
        if after["terminating"] != before["terminating"]:
            patch["metadata"] = {"annotations": {TERMINATING_ANNOTATION: "true" if after["terminating"] else None}}
        store.merge_patch(FEDERATED_KUSTOMIZATION, params["namespace"], params["name"], patch, SUSPEND_FIELD_MANAGER)
    module.exit_json(**result)


def main():
    module_main(argspec(), run_module)


if __name__ == "__main__":
    main()

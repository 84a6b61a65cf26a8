#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: federated_secret_sync
short_description: Propagate a project's federated secrets to one attached cluster
version_added: 0.1.0
description:
  - Reads the C(FederatedSecret)s of O(namespace) and their Secrets on the management cluster (connection
    O(management)), builds the Secrets placed on the attached cluster O(cluster) (the management Secret's data,
    the template's labels, annotations and type, and that cluster's overrides), and reconciles them into the
    project namespace of the attached cluster (the module's connection options) with the apply engine of
    M(gitops.federation.cluster_sync), under the owner C(gitops-secrets/<namespace>) (Secrets and inventories
    of the owner C(gitops/<namespace>/federated-secrets) used by earlier releases are migrated on the first run).
  - So a Secret appears on each cluster it is placed on, follows updates, and is pruned from a cluster when it
    is no longer placed there or its FederatedSecret is deleted.
  - Secret values travel from one cluster to the other inside this module only; they never appear in
    arguments, return values, diffs or logs.
  - Returns, per federated secret, the result to record with M(gitops.federation.gitops_status).
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
  - gitops.federation.management
attributes:
  check_mode:
    support: full
    description: Dry-runs the changes on the attached cluster; nothing is written.
  diff_mode:
    support: full
    description: Before and after of every changed Secret, with every value redacted.
options:
  namespace:
    description: The project namespace, on both clusters.
    type: str
    required: true
  cluster:
    description: The name of the attached cluster in the inventory (what placements and overrides name).
    type: str
    required: true
  cluster_labels:
    description: The attached cluster's labels, for C(clusterSelector) placements (host var C(cluster_labels)).
    type: dict
    default: {}
  state:
    description:
      - V(present) reconciles the Secrets placed on the cluster (pruning the others); V(absent) removes every
        federated secret of the project from the cluster.
    type: str
    choices: [present, absent]
    default: present
  create_namespace:
    description: Create the project namespace on the attached cluster when it does not exist.
    type: bool
    default: false
  allow_empty:
    description:
      - Prune every propagated Secret of the project from the cluster even when the management cluster does not
        confirm the project (its namespace does not exist or cannot be read there).
      - Without it such an empty set is refused and nothing is deleted, since it is what a wrong management
        connection looks like. When the namespace exists and lists no FederatedSecret (the last one was deleted),
        or none is placed on this cluster, the Secrets are pruned without it.
    type: bool
    default: false
seealso:
  - module: gitops.federation.federated_secret
  - module: gitops.federation.gitops_status
  - module: gitops.federation.cluster_sync
"""

EXAMPLES = r"""
- name: Propagate the federated secrets of team-a to every attached cluster
  hosts: attached
  connection: local
  gather_facts: false
  tasks:
    - name: Sync the federated secrets
      gitops.federation.federated_secret_sync:
        kubeconfig: "{{ kubeconfig }}"
        management:
          kubeconfig: "{{ hostvars[groups['management'][0]].kubeconfig }}"
        namespace: team-a
        cluster: "{{ inventory_hostname }}"
        cluster_labels: "{{ cluster_labels | default({}) }}"
      register: secrets_sync
"""

RETURN = r"""
secrets:
  description: The federated secrets placed on this cluster.
  returned: always
  type: list
  elements: str
  sample: [git-credentials]
status_results:
  description:
    - Per federated secret, the result of this cluster for M(gitops.federation.gitops_status) (with
      O(gitops.federation.gitops_status#module:kind=FederatedSecret)). Secrets pruned from the cluster are
      reported V(Deleted).
  returned: always
  type: dict
  sample:
    git-credentials: {cluster: attached-1, status: Applied, counts: {created: 1}}
change_set:
  description: One entry per Secret, what was done (see M(gitops.federation.cluster_sync)).
  returned: always
  type: list
  elements: dict
counts:
  description: Number of Secrets per action.
  returned: always
  type: dict
summary:
  description: The counts as one line.
  returned: always
  type: str
inventory:
  description: The owner's inventory on the attached cluster.
  returned: always
  type: dict
health:
  description: Always empty (Secrets are ready when applied).
  returned: always
  type: list
  elements: dict
api_requests:
  description: API requests made to the attached cluster, by verb.
  returned: always
  type: dict
"""

from ansible_collections.gitops.federation.plugins.module_utils.k8s.auth_options import MANAGEMENT_ARG_SPEC
from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main, sync_return
from ansible_collections.gitops.federation.plugins.module_utils.federation.federated_secrets import (
    propagate_secrets, secret_status_results)


def argspec():
    return dict(
        management=dict(type="dict", required=True, options=MANAGEMENT_ARG_SPEC),
        namespace=dict(type="str", required=True),
        cluster=dict(type="str", required=True),
        cluster_labels=dict(type="dict", default={}),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        create_namespace=dict(type="bool", default=False),
        allow_empty=dict(type="bool", default=False),
    )


def run_module(module):
    params = module.params
    client = module.client(params["cluster"])
    result, placed = propagate_secrets(
        client, module.management_client() if params["state"] == "present" else None, params["namespace"],
        params["cluster"], params["cluster_labels"], create_namespace=params["create_namespace"],
        check_mode=module.check_mode, allow_empty=params["allow_empty"], state=params["state"])
    returned = sync_return(result, client, module)
    returned.update(secrets=placed, status_results=secret_status_results(result.change_set.entries(), params["cluster"]))
    return returned


def main():
    module_main(argspec(), run_module)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: federated_secret
short_description: Create, update or delete a federated secret (a Secret and its FederatedSecret) of a project
version_added: 0.1.0
description:
  - Manages, on the management cluster, a C(FederatedSecret) (C(types.kubefed.io/v1beta1)) and the Secret of the
    same name in the project namespace that holds its values. The FederatedSecret holds the labels, annotations,
    type, placement and overrides, never a value.
  - The sync propagates the Secret to the project namespace of every attached cluster it is placed on (see
    M(gitops.federation.federated_secret_sync)); removing a cluster from the placement deletes it there.
  - Values come from O(data) (base64), O(string_data) (plain text) and the credential options, which use the key
    names of Flux and Kommander, so existing secrets work unchanged. They are declared in full, so keys not
    given are removed. Without any of them the Secret is not touched, and must exist.
  - Writes only what differs from the live objects (server-side apply, field manager
    C(gitops-federation-config)), so a second run with the same options reports RV(ignore:changed=false).
  - Secret values never appear in return values or diffs; RV(data_keys) lists the key names.
author:
  - gitops.federation maintainers (@gitops-federation)
extends_documentation_fragment:
  - gitops.federation.cluster_auth
  - gitops.federation.overrides
attributes:
  check_mode:
    support: full
    description: Reads the live objects and dry-runs the changes on the server; nothing is written.
  diff_mode:
    support: full
    description: Before and after of the FederatedSecret and of the Secret, with every Secret value redacted.
options:
  name:
    description: Name of the FederatedSecret and of its Secret.
    type: str
    required: true
  namespace:
    description: The project namespace on the management cluster.
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates both objects, V(absent) deletes both. Propagated copies are pruned from the
        attached clusters by the next sync.
    type: str
    choices: [present, absent]
    default: present
  type:
    description:
      - The Secret type, for example V(Opaque) or V(kubernetes.io/basic-auth). A Secret's type cannot change;
        delete the federated secret first to change it.
      - Defaults to the type of the existing Secret, else V(Opaque).
    type: str
  data:
    description:
      - Secret values, base64-encoded, as in a Secret's C(data) (binary values work).
    type: dict
  string_data:
    description:
      - Secret values as plain text; the module encodes them. They win over O(data) for the same key.
    type: dict
  username:
    description: User name for HTTPS git access (key C(username)).
    type: str
  password:
    description: Password or access token for HTTPS git access (key C(password)).
    type: str
  bearer_token:
    description: Token for HTTPS git servers that take bearer tokens (key C(bearerToken)).
    type: str
  ca_file:
    description:
      - CA certificate (PEM content, not a path) of an HTTPS git server (key C(caFile)). Use
        C(lookup('file', ...)) to read a file.
    type: str
  ssh_private_key:
    description: SSH private key (content) for SSH git access (key C(identity)).
    type: str
  ssh_public_key:
    description: SSH public key (content) of the deploy key (key C(identity.pub)).
    type: str
  known_hosts:
    description: Content of a C(known_hosts) file with the SSH server's host key (key C(known_hosts)).
    type: str
  labels:
    description: Labels of the propagated Secret (the template's C(metadata.labels)).
    type: dict
  annotations:
    description: Annotations of the propagated Secret (the template's C(metadata.annotations)).
    type: dict
  clusters:
    description:
      - Names of the attached clusters (inventory host names) to place the secret on (C(placement.clusters)).
    type: list
    elements: str
  cluster_selector:
    description:
      - Place the secret on the clusters whose C(cluster_labels) match (C(placement.clusterSelector)). Either a
        label selector with C(matchLabels) and C(matchExpressions), or a plain dictionary of labels.
      - An empty dictionary selects every attached cluster. The secret goes to the union of O(clusters) and the
        selected clusters.
    type: dict
notes:
  - O(overrides) patch the propagated Secret on that cluster (for example V(/metadata/labels/env) or V(/type)).
    Values cannot be set there (they would be stored in the custom resource); keys under C(/data) can only be
    removed.
  - The credential options are C(no_log) except O(username), which is not secret and, masked, would blank out every
    occurrence of a short name such as C(git) in unrelated output; O(data) and O(string_data) are C(no_log) too.
    Their values are masked in all output.
seealso:
  - module: gitops.federation.gitops_source
  - module: gitops.federation.federated_secret_sync
"""

EXAMPLES = r"""
- name: Credentials for an HTTPS git repository, on every attached cluster of the project
  gitops.federation.federated_secret:
    kubeconfig: /etc/clusters/management.kubeconfig
    namespace: team-a
    name: git-credentials
    username: deploy
    password: "{{ vault_git_token }}"
    cluster_selector: {}

- name: An SSH deploy key, only on the production clusters, labelled per cluster
  gitops.federation.federated_secret:
    namespace: team-a
    name: deploy-key
    ssh_private_key: "{{ lookup('file', 'keys/deploy') }}"
    ssh_public_key: "{{ lookup('file', 'keys/deploy.pub') }}"
    known_hosts: "{{ lookup('file', 'keys/known_hosts') }}"
    cluster_selector:
      matchLabels:
        env: production
    overrides:
      - cluster_name: prod-eu-1
        cluster_overrides:
          - op: add
            path: /metadata/labels/region
            value: eu

- name: Application settings from plain text
  gitops.federation.federated_secret:
    namespace: team-a
    name: app-settings
    string_data:
      DATABASE_URL: "{{ vault_database_url }}"
    clusters: [attached-1, attached-2]

- name: Remove a federated secret (the copies are pruned by the next sync)
  gitops.federation.federated_secret:
    namespace: team-a
    name: app-settings
    state: absent
"""

RETURN = r"""
federated_secret:
  description: The FederatedSecret as applied (metadata and spec; it holds no secret value).
  returned: when O(state=present)
  type: dict
  sample:
    apiVersion: types.kubefed.io/v1beta1
    kind: FederatedSecret
    metadata: {name: git-credentials, namespace: team-a}
    spec:
      template: {type: Opaque}
      placement: {clusterSelector: {}}
secret:
  description: The Secret holding the values, without them.
  returned: when O(state=present)
  type: dict
  sample: {name: git-credentials, namespace: team-a, type: Opaque, data_keys: [password, username]}
data_keys:
  description: The key names of the Secret's data (never the values).
  returned: when O(state=present)
  type: list
  elements: str
  sample: [password, username]
actions:
  description: What happened to each object (created, configured, unchanged, deleted, absent).
  returned: always
  type: dict
  sample: {federated_secret: created, secret: created}
"""

from ansible_collections.gitops.federation.plugins.module_utils.cluster_module import main as module_main
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.federated_secrets import (
    desired_federated_secret, desired_secret)
from ansible_collections.gitops.federation.plugins.module_utils.federation.store import FEDERATED_SECRET, spec_view
from ansible_collections.gitops.federation.plugins.module_utils.federation.overrides import override_options, overrides_from_options
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import placement_from_options
from ansible_collections.gitops.federation.plugins.module_utils.federation.secret_data import HELPER_OPTIONS, build_data, data_keys


def argspec():
    return dict(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        type=dict(type="str"),
        data=dict(type="dict", no_log=True),
        string_data=dict(type="dict", no_log=True),
        # A user name identifies, it does not authenticate; masking it would also mask every string containing it.
        username=dict(type="str", no_log=False),
        password=dict(type="str", no_log=True),
        bearer_token=dict(type="str", no_log=True),
        ca_file=dict(type="str", no_log=True),
        ssh_private_key=dict(type="str", no_log=True),
        ssh_public_key=dict(type="str", no_log=True),
        known_hosts=dict(type="str", no_log=True),
        labels=dict(type="dict"),
        annotations=dict(type="dict"),
        clusters=dict(type="list", elements="str"),
        cluster_selector=dict(type="dict"),
        overrides=dict(type="list", elements="dict", options=override_options()),
    )


def run_module(module):
    params = module.params
    name, namespace = params["name"], params["namespace"]
    store = module.store()
    if params["state"] == "absent":
        federated = store.delete(FEDERATED_SECRET, namespace, name, module.check_mode)
        secret = store.delete("Secret", namespace, name, module.check_mode)
        changes = [federated, secret]
        result = dict(actions=dict(federated_secret=federated.action, secret=secret.action))
    else:
        live_secret = store.get("Secret", namespace, name)
        helpers = dict((option, params[option]) for option in HELPER_OPTIONS)
        manage_data = any(params[o] is not None for o in ("data", "string_data")) or any(
            v is not None for v in helpers.values())
        if manage_data:
            secret_type = params["type"] or (live_secret or {}).get("type") or "Opaque"
            if live_secret is not None and (live_secret.get("type") or "Opaque") != secret_type:
                raise FederationError("Secret %s/%s has type %s and a Secret's type cannot change; delete the federated "
                                      "secret (state: absent) before recreating it as %s"
                                      % (namespace, name, live_secret.get("type"), secret_type))
            data = build_data(params["data"], params["string_data"], helpers)
            secret = store.apply(desired_secret(name, namespace, secret_type, data), module.check_mode,
                                 live=live_secret, fetch=False)
            keys = sorted(data)
        elif live_secret is None:
            raise FederationError("Secret %s/%s does not exist: give data, string_data or a credential option (username, "
                                  "password, bearer_token, ssh_private_key...) to create it" % (namespace, name))
        else:
            secret = None  # values managed elsewhere: the Secret is only referenced
            secret_type = params["type"] or live_secret.get("type") or "Opaque"
            keys = data_keys(live_secret)
        placement = placement_from_options(params["clusters"], params["cluster_selector"])
        federated = store.apply(desired_federated_secret(
            name, namespace, secret_type, params["labels"], params["annotations"], placement,
            overrides_from_options(params["overrides"])), module.check_mode)
        changes = [federated] + ([secret] if secret is not None else [])
        result = dict(
            federated_secret=spec_view(federated.after),
            secret=dict(name=name, namespace=namespace, type=secret_type, data_keys=keys),
            data_keys=keys,
            actions=dict(federated_secret=federated.action, secret=secret.action if secret is not None else "unchanged"),
        )
    return module.config_result(changes, **result)


def main():
    module_main(argspec(), run_module)


if __name__ == "__main__":
    main()

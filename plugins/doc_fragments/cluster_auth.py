# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Cluster connection options, named as in kubernetes.core so module_defaults carry over."""

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
      - When neither this nor O(host) is given (nor found in the environment, see the notes),
        C(~/.kube/config) is used, then the in-cluster service account when running inside a pod.
      - Environment variable E(K8S_AUTH_KUBECONFIG).
    type: raw
  context:
    description:
      - The kubeconfig context to use. Defaults to the kubeconfig's current context.
      - Environment variable E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the Kubernetes API server.
      - Given together with O(kubeconfig), it replaces the server of the kubeconfig's context (as in
        kubernetes.core); the context's credentials are kept unless O(api_key) or O(client_cert) is given.
      - Environment variable E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token used to authenticate with the API server.
      - Environment variable E(K8S_AUTH_API_KEY).
    type: str
  client_cert:
    description:
      - Path to a client certificate used to authenticate with the API server.
      - Environment variable E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert).
      - Environment variable E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  ca_cert:
    description:
      - Path to a CA certificate used to verify the API server.
      - Environment variable E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Defaults to the kubeconfig's setting, else V(true).
      - Environment variable E(K8S_AUTH_VERIFY_SSL).
    type: bool
    aliases: [verify_ssl]
  proxy:
    description:
      - HTTP proxy URL for connections to the API server.
      - Environment variable E(K8S_AUTH_PROXY).
    type: str
  request_timeout:
    description:
      - Seconds to wait for any single API request.
    type: float
    default: 30
requirements:
  - python >= 3.9
  - kubernetes >= 30.1.0, < 37
  - PyYAML >= 6.0.1
notes:
  - "Where the connection comes from: an option given to the task (directly or through C(module_defaults)) is
    used as given. O(kubeconfig), O(context) and O(host) say which cluster the task is for. When O(kubeconfig)
    or O(host) is given, no E(K8S_AUTH_*) environment variable is read. When only O(context) is given,
    E(K8S_AUTH_KUBECONFIG) is read (the file holding that context) and nothing else. When none of the three is
    given, the E(K8S_AUTH_*) variables are read as one set, and the options given to the task replace single
    values of it; a set naming a host (E(K8S_AUTH_HOST)) and also a kubeconfig or context describes two
    clusters and is refused."
  - This differs from kubernetes.core, where each option falls back to its variable on its own, so a token and
    server exported for one cluster (for example by the AWX credential type C(OpenShift or Kubernetes API
    Bearer Token)) would replace those of a kubeconfig given to the task for another cluster.
  - Modules of this collection run on the controller (C(connection=local)) and talk to each cluster's API.
  - Use the C(gitops.federation.cluster) action group in C(module_defaults) to pass connection options once.
"""

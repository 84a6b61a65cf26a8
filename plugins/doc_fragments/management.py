# -*- coding: utf-8 -*-
# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The ``management`` option: the connection to the management cluster of a module that works on another."""

    # Required (cluster_reconcile, federated_secret_sync). The suboptions are auth_options.MANAGEMENT_ARG_SPEC.
    DOCUMENTATION = r"""
options:
  management:
    description:
      - Connection to the management cluster, with the same keys as the module's own connection options (which
        are for the cluster the module works on).
      - The E(K8S_AUTH_*) environment variables complete them by the same rule as the module's own options. With
        O(management.kubeconfig) or O(management.host) none is read; with O(management.context) alone only
        E(K8S_AUTH_KUBECONFIG) (one kubeconfig with a context per cluster serves both clusters); with none of the
        three, all of them as one set.
    type: dict
    required: true
    suboptions:
      kubeconfig:
        description: Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
        type: raw
      context:
        description: The kubeconfig context to use.
        type: str
      host:
        description: URL of the API server.
        type: str
      api_key:
        description: Bearer token.
        type: str
      client_cert:
        description: Path to a client certificate.
        type: path
      client_key:
        description: Path to the key of O(management.client_cert).
        type: path
      ca_cert:
        description: Path to a CA certificate to verify the API server.
        type: path
      validate_certs:
        description: Whether to verify the API server's TLS certificate.
        type: bool
      proxy:
        description: HTTP proxy URL.
        type: str
      request_timeout:
        description: Seconds to wait for any single API request.
        type: float
        default: 30
"""

    # Optional: only some of the module's work needs the management cluster (cluster_sync's lease).
    OPTIONAL = r"""
options:
  management:
    description:
      - Connection to the management cluster, with the same keys as the module's own connection options (which
        are for the cluster the module works on).
      - Required with O(lease).
      - The E(K8S_AUTH_*) environment variables complete them by the same rule as the module's own options. With
        O(management.kubeconfig) or O(management.host) none is read; with O(management.context) alone only
        E(K8S_AUTH_KUBECONFIG) (one kubeconfig with a context per cluster serves both clusters); with none of the
        three, all of them as one set.
    type: dict
    suboptions:
      kubeconfig:
        description: Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
        type: raw
      context:
        description: The kubeconfig context to use.
        type: str
      host:
        description: URL of the API server.
        type: str
      api_key:
        description: Bearer token.
        type: str
      client_cert:
        description: Path to a client certificate.
        type: path
      client_key:
        description: Path to the key of O(management.client_cert).
        type: path
      ca_cert:
        description: Path to a CA certificate to verify the API server.
        type: path
      validate_certs:
        description: Whether to verify the API server's TLS certificate.
        type: bool
      proxy:
        description: HTTP proxy URL.
        type: str
      request_timeout:
        description: Seconds to wait for any single API request.
        type: float
        default: 30
"""

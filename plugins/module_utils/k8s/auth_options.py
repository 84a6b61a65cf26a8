# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster connection options shared by every module (documented in doc_fragments/cluster_auth.py).

The option names and K8S_AUTH_* environment variables are those of kubernetes.core, so inventories and
module_defaults written for it carry over. Unlike an arg-spec ``env_fallback``, which fills each option on
its own, the environment is read here as one set, and only when the task does not say which cluster to use:
a kubeconfig given to the task and a host/token that an AWX credential exported for another cluster must
never be mixed into one connection (see ``auth_from_params``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="raw"),
    context=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    client_cert=dict(type="path", aliases=["cert_file"]),
    client_key=dict(type="path", aliases=["key_file"], no_log=False),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"]),
    validate_certs=dict(type="bool", aliases=["verify_ssl"]),
    proxy=dict(type="str"),
    request_timeout=dict(type="float", default=30.0),
)

AUTH_OPTION_NAMES = tuple(AUTH_ARG_SPEC)

# The suboptions of a ``management`` option: the same connection options for the management cluster, without
# aliases. auth_from_params completes them from K8S_AUTH_* by the same rule as a task's own options: C(context)
# alone takes the kubeconfig file from K8S_AUTH_KUBECONFIG; C(kubeconfig) or C(host) read no environment, so a
# host or token exported for another cluster never joins them.
MANAGEMENT_ARG_SPEC = dict((name, dict((k, v) for k, v in spec.items() if k != "aliases"))
                           for name, spec in AUTH_ARG_SPEC.items())

# Option -> environment variable (kubernetes.core's names).
ENVIRONMENT_VARIABLES = dict(
    kubeconfig="K8S_AUTH_KUBECONFIG",
    context="K8S_AUTH_CONTEXT",
    host="K8S_AUTH_HOST",
    api_key="K8S_AUTH_API_KEY",
    client_cert="K8S_AUTH_CERT_FILE",
    client_key="K8S_AUTH_KEY_FILE",
    ca_cert="K8S_AUTH_SSL_CA_CERT",
    validate_certs="K8S_AUTH_VERIFY_SSL",
    proxy="K8S_AUTH_PROXY",
)

PATH_OPTIONS = ("client_cert", "client_key", "ca_cert")


def auth_from_params(params, environ=None):
    """The connection options of a module's params, completed from the K8S_AUTH_* environment.

    The rule (documented in doc_fragments/cluster_auth.py):

    1. An option given to the task (directly or through module_defaults) is used as given.
    2. ``kubeconfig``, ``context`` and ``host`` say which cluster the task is for:
       - when ``kubeconfig`` or ``host`` is given, no K8S_AUTH_* variable is read;
       - when only ``context`` is given, K8S_AUTH_KUBECONFIG is read (the file that holds the context), nothing
         else;
       - when none of the three is given, every K8S_AUTH_* variable is read as one set, and options given to
         the task replace single values of it. A set that names a host and also a kubeconfig or context
         describes two clusters and is refused.
    """
    environ = os.environ if environ is None else environ
    auth = dict((name, params.get(name)) for name in AUTH_OPTION_NAMES)
    if _given(auth.get("kubeconfig")) or _given(auth.get("host")):
        return auth
    if _given(auth.get("context")):
        names = ("kubeconfig",)
    else:
        names = tuple(ENVIRONMENT_VARIABLES)
    from_environment = dict((name, environ.get(ENVIRONMENT_VARIABLES[name])) for name in names)
    from_environment = dict((name, value) for name, value in from_environment.items() if _given(value))
    if from_environment.get("host") and (from_environment.get("kubeconfig") or from_environment.get("context")):
        raise FederationError(
            "the environment names two clusters: K8S_AUTH_HOST and %s are both set (an AWX job with two cluster "
            "credentials exports both); give this task its cluster explicitly with the option kubeconfig "
            "(and context) or host (and api_key)" % " and ".join(
                ENVIRONMENT_VARIABLES[name] for name in ("kubeconfig", "context") if from_environment.get(name)))
    for name, value in from_environment.items():
        if auth.get(name) is not None:
            continue
        if name == "validate_certs":
            value = value.strip().lower() not in ("0", "false", "no", "off")
        elif name in PATH_OPTIONS:
            value = os.path.expanduser(value)
        auth[name] = value
    return auth


def _given(value):
    return value is not None and value != "" and value != {}

"""Where a module's cluster connection comes from: options given to the task, or the K8S_AUTH_* environment."""

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.k8s.auth_options import AUTH_OPTION_NAMES, auth_from_params
from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import _configuration
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError

# What the AWX "OpenShift or Kubernetes API Bearer Token" credential exports, for the management cluster.
BEARER_CREDENTIAL = {
    "K8S_AUTH_HOST": "https://management.example:6443",
    "K8S_AUTH_API_KEY": "management-token",
    "K8S_AUTH_VERIFY_SSL": "False",
    "K8S_AUTH_SSL_CA_CERT": "/runner/env/management-ca.crt",
}
# What a kubeconfig credential exports.
KUBECONFIG_CREDENTIAL = {"K8S_AUTH_KUBECONFIG": "/runner/env/kubeconfig"}


def params(**given):
    """Module params as Ansible hands them over: every option present, None when not given."""
    values = dict((name, None) for name in AUTH_OPTION_NAMES)
    values["request_timeout"] = 30.0
    values.update(given)
    return values


def attached_kubeconfig(server="https://attached.example:6443", token="attached-token"):
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "attached",
        "clusters": [{"name": "attached", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "attached", "user": {"token": token}}],
        "contexts": [{"name": "attached", "context": {"cluster": "attached", "user": "attached"}}],
    }


def bearer(configuration):
    return configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")


def test_a_kubeconfig_given_to_the_task_is_never_mixed_with_the_environment():
    auth = auth_from_params(params(kubeconfig="/inventory/attached.kubeconfig", context="attached"),
                            environ=dict(BEARER_CREDENTIAL, **KUBECONFIG_CREDENTIAL))
    assert auth["kubeconfig"] == "/inventory/attached.kubeconfig" and auth["context"] == "attached"
    assert auth["host"] is None and auth["api_key"] is None
    assert auth["ca_cert"] is None and auth["validate_certs"] is None


def test_an_attached_kubeconfig_keeps_its_server_and_token_under_a_management_bearer_credential():
    # Today's defect: the kubeconfig was loaded, then its server and token replaced by the environment's.
    auth = auth_from_params(params(kubeconfig=attached_kubeconfig()), environ=BEARER_CREDENTIAL)
    configuration = _configuration(auth)
    assert configuration.host == "https://attached.example:6443"
    assert bearer(configuration) == "Bearer attached-token"


def test_a_host_given_to_the_task_reads_no_environment():
    auth = auth_from_params(params(host="https://mgmt:6443", api_key="given"),
                            environ=dict(BEARER_CREDENTIAL, **KUBECONFIG_CREDENTIAL))
    assert auth["host"] == "https://mgmt:6443" and auth["api_key"] == "given"
    assert auth["kubeconfig"] is None and auth["ca_cert"] is None and auth["validate_certs"] is None


def test_a_context_alone_takes_the_kubeconfig_file_from_the_environment_and_nothing_else():
    environ = dict(BEARER_CREDENTIAL, K8S_AUTH_CONTEXT="other", **KUBECONFIG_CREDENTIAL)
    auth = auth_from_params(params(context="prod-eu"), environ=environ)
    assert auth["kubeconfig"] == "/runner/env/kubeconfig" and auth["context"] == "prod-eu"
    assert auth["host"] is None and auth["api_key"] is None and auth["ca_cert"] is None


def test_without_a_cluster_given_the_environment_applies_as_one_set():
    auth = auth_from_params(params(), environ=BEARER_CREDENTIAL)
    assert auth["host"] == "https://management.example:6443" and auth["api_key"] == "management-token"
    assert auth["ca_cert"] == "/runner/env/management-ca.crt" and auth["validate_certs"] is False
    configuration = _configuration(auth)
    assert configuration.host == "https://management.example:6443"
    assert bearer(configuration) == "Bearer management-token"


def test_options_given_to_the_task_replace_single_values_of_the_environment_set():
    auth = auth_from_params(params(validate_certs=True, ca_cert="/given/ca.crt", request_timeout=5.0),
                            environ=BEARER_CREDENTIAL)
    assert auth["host"] == "https://management.example:6443"
    assert auth["validate_certs"] is True and auth["ca_cert"] == "/given/ca.crt" and auth["request_timeout"] == 5.0


@pytest.mark.parametrize("kubeconfig_variables", [
    KUBECONFIG_CREDENTIAL, {"K8S_AUTH_CONTEXT": "attached"}, dict(KUBECONFIG_CREDENTIAL, K8S_AUTH_CONTEXT="attached"),
])
def test_an_environment_naming_a_host_and_a_kubeconfig_is_refused(kubeconfig_variables):
    with pytest.raises(FederationError) as raised:
        auth_from_params(params(), environ=dict(BEARER_CREDENTIAL, **kubeconfig_variables))
    assert "K8S_AUTH_HOST" in raised.value.msg and "option kubeconfig" in raised.value.msg
    for name in kubeconfig_variables:
        assert name in raised.value.msg


def test_empty_variables_count_as_unset():
    auth = auth_from_params(params(), environ=dict(KUBECONFIG_CREDENTIAL, K8S_AUTH_HOST="", K8S_AUTH_API_KEY=""))
    assert auth["kubeconfig"] == "/runner/env/kubeconfig" and auth["host"] is None and auth["api_key"] is None


@pytest.mark.parametrize("text, expected", [("0", False), ("false", False), ("no", False), ("True", True),
                                            ("1", True), ("yes", True)])
def test_verify_ssl_from_the_environment_is_a_boolean(text, expected):
    assert auth_from_params(params(), environ={"K8S_AUTH_VERIFY_SSL": text})["validate_certs"] is expected


def test_an_explicit_host_with_a_kubeconfig_replaces_only_the_server():
    # Both given to the task: the documented override (kubernetes.core semantics), credentials kept.
    auth = auth_from_params(params(kubeconfig=attached_kubeconfig(), host="https://tunnel.example:7443"),
                            environ=BEARER_CREDENTIAL)
    configuration = _configuration(auth)
    assert configuration.host == "https://tunnel.example:7443"
    assert bearer(configuration) == "Bearer attached-token"

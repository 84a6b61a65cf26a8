"""Unit tests of the module base: errors meet Ansible in one place, results and redaction on every exit."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gitops.federation.plugins.module_utils import cluster_module
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.store import ConfigChange


def run(argument_spec, run_module, args, capsys, **kwargs):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exited:
            cluster_module.main(argument_spec, run_module, **kwargs)
    return exited.value.code, json.loads(capsys.readouterr().out)


def test_a_federation_error_becomes_a_failure_with_its_details(capsys):
    def run_module(module):
        raise FederationError("Deployment team-a/web: refused", status=422)

    code, result = run(dict(name=dict(type="str")), run_module, dict(name="x"), capsys)
    assert code == 1 and result["failed"] is True
    assert result["msg"] == "Deployment team-a/web: refused" and result["status"] == 422


def test_the_returned_result_is_the_exit_and_connection_options_are_shared(capsys):
    seen = {}

    def run_module(module):
        seen.update(module.params)
        return dict(changed=False, answer=42)

    code, result = run(dict(name=dict(type="str")), run_module, dict(name="x", context="c"), capsys)
    assert code == 0 and result["answer"] == 42
    assert seen["context"] == "c" and seen["request_timeout"] == 30.0  # auth_options.AUTH_ARG_SPEC


def test_secret_values_among_the_arguments_are_hidden_on_a_failure(capsys):
    def run_module(module):
        raise FederationError("no")

    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "hunter2"}}
    code, result = run(dict(manifests=dict(type="list", elements="dict")), run_module, dict(manifests=[manifest]),
                       capsys)
    assert code == 1 and "hunter2" not in json.dumps(result)


def test_config_result_reports_changed_and_diffs_only_in_diff_mode(capsys):
    changes = [ConfigChange("unchanged", {"a": 1}, {"a": 1}, "X a/b"), ConfigChange("configured", {"a": 1}, {"a": 2}, "X a/c")]
    code, result = run({}, lambda module: module.config_result(changes, actions={}), dict(_ansible_diff=True), capsys)
    assert result["changed"] is True and len(result["diff"]) == 1
    code, result = run({}, lambda module: module.config_result(changes[:1], actions={}), {}, capsys)
    assert result["changed"] is False and "diff" not in result


def test_modules_without_a_cluster_get_no_connection_options(capsys):
    code, result = run({}, lambda module: dict(changed=False, keys=sorted(module.params)), {}, capsys, cluster=False)
    assert code == 0 and result["keys"] == []

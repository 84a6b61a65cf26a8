"""The report modules (preview_report, drift_report) run on the module base (module_utils/cluster_module.py):
their results, their failures and their connection come from it, as for every other module."""

import json
import os

# The real library first: drift_report's light import then leaves this process alone.
import kubernetes  # noqa: F401 pylint: disable=unused-import
import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gitops.federation.plugins.module_utils import cluster_module
from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.modules import drift_report, preview_report

PLAN = {"sources": [dict(key="team/app", namespace="team", name="app", ready=True, revision="main@sha1:abc",
                         unplaced=[], clusters={"c1": {}})]}
SAME = dict(report={"sources": {}}, details={"team/app": dict(state="present", counts={"unchanged": 4}, changes=[])})
EDITED = dict(report={"sources": {}}, details={"team/app": dict(state="present", counts={"configured": 1}, changes=[
    dict(subject="ConfigMap team/settings", action="configured",
         fields=[dict(path="data.LOG_LEVEL", before="info", after="debug", managers=["kubectl-edit (Update)"])])])})
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git"}, "stringData": {"token": "hunter2"}}


def run(module, args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exited:
            module.main()
    return exited.value.code, json.loads(capsys.readouterr().out)


def test_preview_report_writes_both_reports_returns_the_summary_and_removes_the_scratch_dir(tmp_path, capsys):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    plan = dict(PLAN, scratch_dir=str(scratch))
    code, result = run(preview_report, dict(plan=plan, reconciled={"c1": EDITED}, ref="feature",
                                            json_path=str(tmp_path / "p.json"), markdown_path=str(tmp_path / "p.md")),
                       capsys)
    assert code == 0 and result["changed"] is True, result
    assert (result["outcome"], result["exit_code"]) == ("changes", 2)
    assert result["written"] == [str(tmp_path / "p.json"), str(tmp_path / "p.md")]
    assert json.loads((tmp_path / "p.json").read_text()) == result["summary"]
    assert (tmp_path / "p.md").read_text() == result["markdown"] and not scratch.exists()
    assert "context" not in result["invocation"]["module_args"]  # talks to no cluster: no connection options


def test_preview_report_fails_naming_a_report_path_it_cannot_write(tmp_path, capsys):
    missing = str(tmp_path / "no-such-dir" / "p.json")
    code, result = run(preview_report, dict(plan=PLAN, reconciled={"c1": SAME}, json_path=missing), capsys)
    assert code == 1 and result["failed"] is True
    assert result["msg"].startswith("cannot write the report to %s" % missing)
    assert os.listdir(str(tmp_path)) == []


def test_preview_report_hides_secret_values_among_its_arguments(tmp_path, capsys):
    # A registered reconcile result carries its own invocation: a Secret in it is not echoed back in clear.
    reconciled = {"c1": dict(SAME, invocation=dict(module_args=dict(objects=[SECRET])))}
    code, result = run(preview_report, dict(plan=PLAN, reconciled=reconciled), capsys)
    assert code == 0 and result["outcome"] == "no_changes"
    assert "hunter2" not in json.dumps(result)


class Recorded:
    def __init__(self, status_changed):
        self.status_changed = status_changed


def test_drift_report_connects_through_the_module_base_and_sets_drifted(tmp_path, monkeypatch, capsys):
    clients, conditions = [], []

    def client(module, name=None, auth=None):
        clients.append((name, auth, module.params["cache_dir"], module.params["context"]))
        return "management-client"

    def record_condition(client, kind, namespace, name, ctype, state, reason, message, events, check_mode=False):
        conditions.append((client, kind, "%s/%s" % (namespace, name), ctype, state, reason, [e[1] for e in events],
                           check_mode))
        return Recorded(True)

    monkeypatch.setattr(cluster_module.ClusterModule, "client", client)
    monkeypatch.setattr(drift_report, "record_condition", record_condition)
    code, result = run(drift_report, dict(plan=PLAN, reconciled={"c1": EDITED}, context="mgmt",
                                          cache_dir=str(tmp_path), json_path=str(tmp_path / "d.json"),
                                          _ansible_check_mode=True), capsys)
    assert code == 0, result
    assert clients == [("management", None, str(tmp_path), "mgmt")]
    assert conditions == [("management-client", "FederatedKustomization", "team/app", "Drifted", "True",
                           "DriftDetected", ["DriftDetected"], True)]
    assert result["changed"] is True and result["drifted"] is True and "Drifted=True" in result["markdown"]
    assert json.loads((tmp_path / "d.json").read_text()) == result["report"]


def test_drift_report_failures_carry_the_error_details(tmp_path, monkeypatch, capsys):
    def record_condition(*args, **kwargs):
        raise FederationError("FederatedKustomization team/app: status write failed: forbidden", status=403)

    monkeypatch.setattr(cluster_module.ClusterModule, "client", lambda module, name=None, auth=None: None)
    monkeypatch.setattr(drift_report, "record_condition", record_condition)
    code, result = run(drift_report, dict(plan=PLAN, reconciled={"c1": SAME}), capsys)
    assert code == 1 and result["status"] == 403 and "status write failed" in result["msg"], result

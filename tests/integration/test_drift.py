"""Issue 14.2: the drift report (playbooks/drift.yml) against real clusters.

A hand edit (kubectl patch) and a hand delete on the attached clusters show in the report with the field that
differs and the field manager that changed it, the source's Drifted condition says so, and nothing is applied.
"""

import json

import pytest

from test_playbooks import ATTACHED, Env, condition, ok, playbook


@pytest.fixture(scope="module")
def env(clusters, admin_clients, git_servers, tmp_path_factory):
    return Env(clusters, admin_clients, git_servers, str(tmp_path_factory.mktemp("drift")))


def test_hand_edit_and_hand_delete_show_in_the_drift_report_with_the_manager_and_drifted(env, tmp_path):
    project = env.project("drift")
    inventory = project.inventory()
    ok(playbook("sources", inventory))
    ok(playbook("sync", inventory))

    report_path = str(tmp_path / "clean.json")
    ok(playbook("drift", inventory, {"drift_json": report_path}))
    drifted = condition(project.source()["status"], "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("False", "NoDrift"), drifted
    clean = json.load(open(report_path))
    assert not clean["drifted"] and all(not row["objects"] for row in clean["sources"][0]["clusters"])

    env.kubectl(ATTACHED[0], "-n", project.namespace, "patch", "configmap/demo-app-settings", "--type=merge",
                "-p", json.dumps({"data": {"LOG_LEVEL": "trace"}}))
    env.kubectl(ATTACHED[1], "-n", project.namespace, "delete", "service/demo-app")
    versions = project.resource_versions(ATTACHED[0])

    report_path = str(tmp_path / "drifted.json")
    run = ok(playbook("drift", inventory, {"drift_json": report_path, "drift_markdown": str(tmp_path / "d.md")}))
    report = json.load(open(report_path))
    assert report["drifted"]
    (source,) = report["sources"]
    rows = dict((row["cluster"], row) for row in source["clusters"])
    edited = rows[ATTACHED[0]]["objects"]
    assert edited == [dict(subject="ConfigMap/%s/demo-app-settings" % project.namespace, drift="modified",
                           managers=["kubectl-patch (Update)"],
                           fields=[dict(path="data.LOG_LEVEL", live="trace", applied="info",
                                        managers=["kubectl-patch (Update)"])])], edited
    assert rows[ATTACHED[1]]["objects"] == [dict(subject="Service/%s/demo-app" % project.namespace,
                                                 drift="deleted", fields=[], managers=[])]
    drifted = condition(project.source()["status"], "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("True", "DriftDetected"), drifted
    assert "kubectl-patch" in drifted["message"] and "Service/%s/demo-app deleted" % project.namespace \
        in drifted["message"]
    assert "kubectl-patch (Update)" in open(str(tmp_path / "d.md")).read()

    # The report applied nothing: the edit and the deletion are still there.
    assert project.resource_versions(ATTACHED[0]) == versions
    assert project.get(ATTACHED[0], "v1", "ConfigMap", "demo-app-settings")["data"]["LOG_LEVEL"] == "trace"
    assert project.get(ATTACHED[1], "v1", "Service", "demo-app") is None
    assert any("live state differs" in message for message in project.events())

    # A scheduled job can fail on drift.
    run = playbook("drift", inventory, {"fail_on_drift": True})
    assert run.returncode == 2 and any(str(r.get("msg", "")).startswith("gitops drift: drifted:")
                                       for r in run.results if r.get("failed")), run.output[-4000:]

    # A sync takes the clusters back; the next report finds no drift.
    ok(playbook("sync", inventory))
    ok(playbook("drift", inventory))
    drifted = condition(project.source()["status"], "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("False", "NoDrift"), drifted

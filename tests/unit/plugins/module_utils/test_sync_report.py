from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_report import (
    drift, drift_markdown, preview, preview_markdown)

PLAN = {"sources": [
    dict(key="team/app", namespace="team", name="app", ready=True, revision="feature@sha1:abc", unplaced=[],
         clusters={"c1": {}, "c2": {}}, ref_override={"branch": "feature"}),
    dict(key="team/off", namespace="team", name="off", suspended=True, ready=False, clusters={}),
]}
CHANGED = dict(report={"sources": {}}, details={"team/app": dict(state="present", counts={"configured": 1,
                                                                                          "pruned": 1, "unchanged": 2},
                                                                 changes=[
    dict(subject="ConfigMap team/settings", action="configured",
         fields=[dict(path="data.LOG_LEVEL", before="info", after="debug", managers=["kubectl-edit (Update)"])]),
    dict(subject="Service team/app", action="pruned")])})
SAME = dict(report={"sources": {}}, details={"team/app": dict(state="present", counts={"unchanged": 4}, changes=[])})


def test_preview_lists_per_cluster_what_changes_and_gives_the_outcome():
    summary = preview(PLAN, {"c1": CHANGED, "c2": SAME}, "feature")
    assert summary["outcome"] == "changes" and summary["exit_code"] == 2
    rows = dict((c["cluster"], c) for c in summary["sources"][0]["clusters"])
    assert rows["c1"]["changed"] == [dict(subject="ConfigMap team/settings", recreated=False, fields=[
        dict(path="data.LOG_LEVEL", before="info", after="debug")])]
    assert rows["c1"]["pruned"] == ["Service team/app"] and rows["c2"]["outcome"] == "no_changes"
    markdown = preview_markdown(summary)
    assert "| c1 | 0 | 1 | 1 | 2 |" in markdown and "`data.LOG_LEVEL`: `info` → `debug`" in markdown
    assert preview(PLAN, {"c1": SAME, "c2": SAME})["outcome"] == "no_changes"


def test_a_cluster_without_a_result_or_a_failed_source_makes_the_preview_an_error():
    failed = dict(report={"sources": {}}, details={"team/app": dict(failed=True, msg="the API server refused")})
    summary = preview(PLAN, {"c1": failed, "c2": {}})
    assert summary["outcome"] == "error" and summary["exit_code"] == 1
    assert any("c1: the API server refused" in e for e in summary["errors"])


def test_drift_names_deleted_and_edited_objects_with_their_manager():
    deleted = dict(report={"sources": {}}, details={"team/app": dict(state="present", changes=[
        dict(subject="Service team/app", action="created")])})
    report = drift(PLAN, {"c1": CHANGED, "c2": deleted})
    source = report["sources"][0]
    assert report["drifted"] and source["state"] == "True" and source["reason"] == "DriftDetected"
    rows = dict((c["cluster"], c["objects"]) for c in source["clusters"])
    assert rows["c1"] == [dict(subject="ConfigMap team/settings", drift="modified", managers=["kubectl-edit (Update)"],
                               fields=[dict(path="data.LOG_LEVEL", live="info", applied="debug",
                                            managers=["kubectl-edit (Update)"])])]
    assert rows["c2"][0]["drift"] == "deleted"
    assert "ConfigMap team/settings modified by kubectl-edit (Update)" in source["message"]
    assert [s["source"] for s in report["sources"]] == ["team/app"]  # suspended sources are not checked
    assert "Drifted=True" in drift_markdown(report)
    clean = drift(PLAN, {"c1": SAME, "c2": SAME})["sources"][0]
    assert (clean["state"], clean["reason"]) == ("False", "NoDrift")

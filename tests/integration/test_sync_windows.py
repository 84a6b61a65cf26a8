"""Issue 14.3: sync windows from the inventory make sync.yml skip the work they close, against real clusters.

A deny window scoped to one cluster's labels keeps that cluster out of the sync (status and Events say so);
`-e force=true` syncs it anyway and the Event records the override. Once the window is removed, the next sync
applies there and the source's SyncWindow condition is gone.
"""

import pytest
import yaml

from test_playbooks import ATTACHED, SECRET_OBJECT, Env, condition, ok, playbook


@pytest.fixture(scope="module")
def env(clusters, admin_clients, git_servers, tmp_path_factory):
    return Env(clusters, admin_clients, git_servers, str(tmp_path_factory.mktemp("windows")))


def with_windows(path, windows):
    with open(path) as handle:
        inventory = yaml.safe_load(handle)
    inventory["all"]["vars"]["gitops_sync_windows"] = windows
    with open(path, "w") as handle:
        yaml.safe_dump(inventory, handle, sort_keys=False)
    return path


def test_a_deny_window_skips_its_cluster_and_force_overrides_it_on_record(env):
    project = env.project("windows")
    # Always open (every minute, for an hour), on attached-1 only.
    inventory = with_windows(project.inventory(), [{
        "name": "freeze", "kind": "deny", "schedule": "* * * * *", "duration": "1h", "timezone": "Europe/Berlin",
        "cluster_labels": {"name": ATTACHED[0]}}])
    ok(playbook("sources", inventory))

    ok(playbook("sync", inventory))
    assert project.deployment(ATTACHED[0]) is None, "the deny window did not keep the sync off attached-1"
    assert project.deployment(ATTACHED[1]) is not None
    # The project's federated secret is not propagated there either (a window closes the cluster for the project).
    assert project.get(ATTACHED[0], *SECRET_OBJECT) is None
    assert project.get(ATTACHED[1], *SECRET_OBJECT) is not None
    window = condition(project.source()["status"], "SyncWindow")
    assert (window["status"], window["reason"]) == ("False", "SyncWindowClosed"), window
    assert ATTACHED[0] in window["message"] and "deny window freeze" in window["message"]
    skipped = [m for m in project.events() if m.startswith("sync to %s skipped" % ATTACHED[0])]
    assert skipped and "force=true" in skipped[0], project.events()

    ok(playbook("sync", inventory, {"force": True}))
    assert project.deployment(ATTACHED[0]) is not None
    assert project.get(ATTACHED[0], *SECRET_OBJECT) is not None
    window = condition(project.source()["status"], "SyncWindow")
    assert (window["status"], window["reason"]) == ("True", "Forced"), window
    forced = [m for m in project.events() if m.startswith("sync to %s forced (force=true)" % ATTACHED[0])]
    assert forced and "deny window freeze" in forced[0], project.events()
    assert condition(project.source()["status"], "Propagation")["status"] == "True"


def test_a_removed_window_lets_the_next_sync_apply_and_its_condition_goes(env):
    project = env.project("winend")
    inventory = with_windows(project.inventory(), [{
        "name": "freeze", "kind": "deny", "schedule": "* * * * *", "duration": "1h",
        "cluster_labels": {"name": ATTACHED[0]}}])
    ok(playbook("sources", inventory))
    ok(playbook("sync", inventory))
    assert project.deployment(ATTACHED[0]) is None, "the deny window did not hold the sync off attached-1"
    window = condition(project.source()["status"], "SyncWindow")
    assert (window["status"], window["reason"]) == ("False", "SyncWindowClosed"), window

    with_windows(inventory, [])  # the operator removes the window
    ok(playbook("sync", inventory))
    assert project.deployment(ATTACHED[0]) is not None, "the sync after the window was removed did not apply"
    status = project.source()["status"]
    assert [c for c in status["conditions"] if c["type"] == "SyncWindow"] == [], status["conditions"]
    assert condition(status, "Propagation")["status"] == "True"
    assert condition(status, "Ready")["status"] == "True"


def test_an_invalid_window_is_refused_before_anything_is_synced(env):
    project = env.project("badwin")
    inventory = with_windows(project.inventory(), [{"kind": "deny", "schedule": "* * *", "duration": "1h"}])
    ok(playbook("sources", inventory))
    run = playbook("sync", inventory)
    assert run.returncode != 0
    assert any("gitops_sync_windows[0]" in str(r.get("msg")) and "five fields" in str(r.get("msg"))
               for r in run.results if r.get("failed")), run.output[-4000:]
    for host in ATTACHED:
        assert project.deployment(host) is None

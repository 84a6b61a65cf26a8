import datetime

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.federation.placement import InventoryCluster
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_windows import (
    CronSchedule, apply_windows, decide, parse_duration, parse_windows, window_condition)

UTC = datetime.timezone.utc


def at(text, tz=UTC):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=tz)


# -- cron ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("expression, moment, expected", [
    ("0 22 * * *", "2026-11-27 22:00", True),
    ("0 22 * * *", "2026-11-27 22:01", False),
    ("*/15 * * * *", "2026-11-27 10:45", True),
    ("*/15 * * * *", "2026-11-27 10:44", False),
    ("0 8-18/2 * * *", "2026-11-27 10:00", True),
    ("0 8-18/2 * * *", "2026-11-27 11:00", False),
    ("0 9 * * mon-fri", "2026-11-27 09:00", True),   # a Friday
    ("0 9 * * mon-fri", "2026-11-28 09:00", False),  # a Saturday
    ("0 9 * * 0", "2026-11-29 09:00", True),         # Sunday as 0
    ("0 9 * * 7", "2026-11-29 09:00", True),         # and as 7
    ("0 0 1 jan,jul *", "2026-07-01 00:00", True),
    ("0 0 1 jan,jul *", "2026-08-01 00:00", False),
    # day of month and day of week both restricted: either matches (cron semantics)
    ("0 0 13 * fri", "2026-11-13 00:00", True),
    ("0 0 13 * fri", "2026-11-27 00:00", True),
    ("0 0 13 * fri", "2026-11-26 00:00", False),
    ("@daily", "2026-11-26 00:00", True),
    ("@weekly", "2026-11-29 00:00", True),
])
def test_cron_schedules_match_as_cron_does(expression, moment, expected):
    assert CronSchedule(expression).matches(at(moment)) is expected


@pytest.mark.parametrize("expression, words", [
    ("0 22 * *", "five fields"),
    ("61 * * * *", "minute '61' is not a number from 0 to 59"),
    ("0 * * foo *", "month 'foo'"),
    ("0 5-2 * * *", "runs backwards"),
    ("*/0 * * * *", "step '0'"),
])
def test_bad_cron_schedules_are_refused_with_the_field_named(expression, words):
    with pytest.raises(FederationError) as err:
        CronSchedule(expression, "gitops_sync_windows[0] (x): schedule")
    assert words in err.value.msg and "gitops_sync_windows[0]" in err.value.msg


def test_durations():
    assert parse_duration("8h") == 480
    assert parse_duration("1h30m") == 90
    assert parse_duration("2d") == 2880
    assert parse_duration(45) == 45
    for bad in ("", "8 hours", 0, "8d", True):
        with pytest.raises(FederationError):
            parse_duration(bad)


# -- windows ---------------------------------------------------------------------------------------------------


def test_a_deny_window_blocks_from_its_start_for_its_duration_in_its_time_zone():
    windows = parse_windows([{"name": "nightly", "kind": "deny", "schedule": "0 22 * * *", "duration": "8h",
                              "timezone": "Europe/Berlin"}])
    # 22:00 in Berlin (winter) is 21:00 UTC; open until 06:00 Berlin, 05:00 UTC.
    assert not decide(windows, at("2026-11-27 20:59"), "team", "app", "c1", {}).blocked
    blocked = decide(windows, at("2026-11-27 21:00"), "team", "app", "c1", {})
    assert blocked.blocked and "deny window nightly" in blocked.reason and "Europe/Berlin" in blocked.reason
    assert "2026-11-28 06:00 CET" in blocked.reason
    assert decide(windows, at("2026-11-28 04:59"), "team", "app", "c1", {}).blocked
    assert not decide(windows, at("2026-11-28 05:00"), "team", "app", "c1", {}).blocked


def test_a_window_follows_daylight_saving_time_as_a_wall_clock():
    windows = parse_windows([{"kind": "deny", "schedule": "0 9 * * *", "duration": "1h",
                              "timezone": "Europe/Berlin"}])
    assert decide(windows, at("2026-07-01 07:30"), "t", "a", "c", {}).blocked   # CEST: 09:30 local
    assert not decide(windows, at("2026-07-01 08:30"), "t", "a", "c", {}).blocked
    assert decide(windows, at("2026-12-01 08:30"), "t", "a", "c", {}).blocked   # CET: 09:30 local


def test_allow_windows_block_outside_them_and_deny_wins_over_allow():
    windows = parse_windows([
        {"name": "office", "kind": "allow", "schedule": "0 8 * * mon-fri", "duration": "10h"},
        {"name": "lunch", "kind": "deny", "schedule": "0 12 * * *", "duration": "1h"},
    ])
    outside = decide(windows, at("2026-11-28 10:00"), "t", "a", "c", {})  # Saturday
    assert outside.blocked and "outside every allow window (allow window office" in outside.reason
    assert not decide(windows, at("2026-11-27 10:00"), "t", "a", "c", {}).blocked
    assert decide(windows, at("2026-11-27 12:30"), "t", "a", "c", {}).blocked


def test_windows_apply_only_to_their_projects_sources_clusters_and_labels():
    windows = parse_windows([{"kind": "deny", "schedule": "* * * * *", "duration": "1m", "projects": ["team"],
                              "sources": ["team/app", "other"], "cluster_labels": {"env": "prod"}}])
    now = at("2026-11-27 10:00")
    assert decide(windows, now, "team", "app", "c", {"env": "prod"}).blocked
    assert decide(windows, now, "team", "other", "c", {"env": "prod"}).blocked
    assert not decide(windows, now, "team", "app", "c", {"env": "dev"}).blocked
    assert not decide(windows, now, "team", "app", "c", {}).blocked
    assert not decide(windows, now, "else", "app", "c", {"env": "prod"}).blocked
    assert not decide(windows, now, "team", "third", "c", {"env": "prod"}).blocked
    by_cluster = parse_windows([{"kind": "deny", "schedule": "* * * * *", "duration": "1m", "clusters": ["c2"]}])
    assert [decide(by_cluster, now, "t", "a", c, {}).blocked for c in ("c1", "c2")] == [False, True]


@pytest.mark.parametrize("raw, words", [
    ({"kind": "block", "schedule": "* * * * *", "duration": "1h"}, "kind must be allow or deny"),
    ({"kind": "deny", "duration": "1h"}, "schedule (a cron expression) is required"),
    ({"kind": "deny", "schedule": "* * * * *", "duration": "1h", "timezone": "Mars/Base"}, "'Mars/Base'"),
    ({"kind": "deny", "schedule": "* * * * *", "duration": "1h", "project": ["x"]}, "unknown key project"),
    ({"kind": "deny", "schedule": "* * * * *", "duration": "1h", "sources": "app"}, "sources must be a list"),
])
def test_bad_windows_are_refused_naming_the_entry(raw, words):
    with pytest.raises(FederationError) as err:
        parse_windows([raw])
    assert words in err.value.msg and "gitops_sync_windows[0]" in err.value.msg


def source_view(name="app", clusters=("c1", "c2")):
    return dict(namespace="team", name=name, suspended=False, errors=[],
                clusters=dict((c, dict(render=0)) for c in clusters),
                renders=[dict(id=0, clusters=list(clusters))])


def test_apply_windows_takes_closed_clusters_out_of_the_work_unless_forced():
    windows = parse_windows([{"name": "freeze", "kind": "deny", "schedule": "* * * * *", "duration": "5m",
                              "cluster_labels": {"env": "prod"}}])
    clusters = [InventoryCluster("c1", {"env": "prod"}), InventoryCluster("c2", {"env": "dev"})]
    now = at("2026-11-27 10:00")
    partial, untouched = source_view(), source_view("free", clusters=())
    apply_windows([partial, untouched], windows, clusters, now)
    assert sorted(partial["clusters"]) == ["c2"] and partial["renders"][0]["clusters"] == ["c2"]
    assert list(partial["window"]["blocked"]) == ["c1"] and not partial["window_closed"]
    assert "window" not in untouched

    only_prod = source_view(clusters=("c1",))
    apply_windows([only_prod], windows, clusters, now)
    assert only_prod["window_closed"] and only_prod["renders"] == [] and only_prod["clusters"] == {}
    status, events = window_condition(only_prod["window"])
    assert status[:2] == ("False", "SyncWindowClosed") and "deny window freeze" in status[2]
    assert events[0][1] == "SyncWindowClosed" and "force=true" in events[0][2]

    forced = source_view()
    apply_windows([forced], windows, clusters, now, force=True)
    assert sorted(forced["clusters"]) == ["c1", "c2"] and list(forced["window"]["forced"]) == ["c1"]
    status, events = window_condition(forced["window"])
    assert status[:2] == ("True", "Forced")
    assert [(e[0], e[1]) for e in events] == [("Warning", "SyncWindowOverridden")]
    assert "forced (force=true)" in events[0][2] and "deny window freeze" in events[0][2]


def test_secrets_follow_project_and_cluster_windows_but_not_source_windows():
    from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_windows import closed_secrets

    clusters = [InventoryCluster("c1", {"env": "prod"}), InventoryCluster("c2", {"env": "dev"})]
    now = at("2026-11-27 10:00")
    by_label = parse_windows([{"kind": "deny", "schedule": "* * * * *", "duration": "5m",
                               "cluster_labels": {"env": "prod"}}])
    assert list(closed_secrets(by_label, ["team"], clusters, now)["team"]) == ["c1"]
    assert closed_secrets(by_label, ["team"], clusters, now, force=True) == {}
    by_source = parse_windows([{"kind": "deny", "schedule": "* * * * *", "duration": "5m", "sources": ["app"]}])
    assert closed_secrets(by_source, ["team"], clusters, now) == {}


def test_the_sync_window_condition_ends_once_no_window_applies_to_a_synced_source():
    from ansible_collections.gitops.federation.plugins.module_utils.federation import sync_run
    from ansible_collections.gitops.federation.plugins.module_utils.federation.status import (
        build_status, find_condition, normalize_results, set_condition, status_changed)
    from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_steps import ended_conditions

    clusters = [InventoryCluster("c1", {"env": "prod"}), InventoryCluster("c2", {"env": "dev"})]
    now, revision = at("2026-11-27 10:00"), "main@sha1:abc"

    def plan_entry(windows):
        view = dict(source_view(), owner="gitops/team/app", placed=["c1", "c2"])
        if windows:  # as sync_steps.prepare
            apply_windows([view], windows, clusters, now)
        renders = [dict(item=dict(key="team/app", render=dict(id=0)), revision=revision, bundle="/b/render-0.yaml")]
        return sync_run.sync_plan([view], [dict(item=view, changed=False)], renders, ["team"])["sources"][0]

    held = plan_entry(parse_windows([{"name": "freeze", "kind": "deny", "schedule": "* * * * *", "duration": "1h",
                                      "cluster_labels": {"env": "prod"}}]))
    assert list(held["window"]["blocked"]) == ["c1"] and ended_conditions(held) == ()
    (state, reason, message), unused = window_condition(held["window"])
    drifted = {"type": "Drifted", "status": "False", "reason": "NoDrift", "message": "no drift"}
    previous = build_status({}, normalize_results([dict(cluster="c2", status="Applied", counts={"created": 1})],
                                                  revision), ["c1", "c2"], "2026-11-27T10:00:00Z", 1, revision)
    previous["conditions"] += [set_condition(None, "SyncWindow", state, reason, message, "2026-11-27T10:00:00Z"),
                               drifted]

    # The window is removed from the inventory: the next sync applies everywhere and the condition is gone.
    for windows in ([], parse_windows([{"name": "freeze", "kind": "deny", "schedule": "* * * * *",
                                        "duration": "1h", "cluster_labels": {"env": "staging"}}])):
        freed = plan_entry(windows)
        assert freed["ready"] and "window" not in freed and ended_conditions(freed) == ("SyncWindow",)
        applied = normalize_results([dict(cluster=c, status="Applied", counts={"created": 1}) for c in ("c1", "c2")],
                                    revision)
        status = build_status(previous, applied, ["c1", "c2"], "2026-11-27T11:00:00Z", 1, revision,
                              ended=ended_conditions(freed))
        assert find_condition(status["conditions"], "SyncWindow") is None
        assert find_condition(status["conditions"], "Drifted") == drifted  # other steps' conditions stay
        assert status_changed(previous, status)
    # Without ended conditions (a source this run did not sync) the condition stays as it was.
    assert ended_conditions(dict(freed, ready=False, suspended=True)) == ()
    kept = build_status(previous, [], ["c1", "c2"], "2026-11-27T11:00:00Z", 1, revision)
    assert find_condition(kept["conditions"], "SyncWindow")["reason"] == "SyncWindowClosed"

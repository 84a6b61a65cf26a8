import datetime

from ansible_collections.gitops.federation.plugins.module_utils.lease import describe, expired

NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.timezone.utc)


def spec(renewed_seconds_ago, duration=60, holder="run-1"):
    renew = NOW - datetime.timedelta(seconds=renewed_seconds_ago)
    return {"holderIdentity": holder, "leaseDurationSeconds": duration,
            "acquireTime": "2026-11-27T11:00:00.000000Z", "renewTime": renew.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def test_a_lease_expires_duration_seconds_after_its_last_renewal():
    assert not expired(spec(59), NOW)
    assert expired(spec(60), NOW)


def test_a_lease_without_holder_or_times_is_free():
    assert expired({}, NOW)
    assert expired(spec(0, holder=""), NOW)


def test_description_names_holder_and_expiry():
    text = describe(spec(10))
    assert text.startswith("held by run-1 since 2026-11-27T11:00:00.000000Z")
    assert "expires 2026-11-27T12:00:50" in text

import datetime

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.federation.lease import LeaseTimeError, describe, expired

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


@pytest.mark.parametrize("text", ["2026-11-27T11:59:30Z", "2026-11-27T11:59:30.5Z", "2026-11-27T11:59:30.123456Z",
                                  "2026-11-27T11:59:30.123456789Z", "2026-11-27T12:59:30.000000+01:00"])
def test_lease_times_in_every_rfc3339_form_the_api_may_hold(text):
    lease = dict(spec(0), renewTime=text)
    assert not expired(dict(lease, leaseDurationSeconds=31), NOW)
    assert expired(dict(lease, leaseDurationSeconds=29), NOW)


@pytest.mark.parametrize("text", ["yesterday", "2026-11-27 11:59:30", "2026-13-27T11:59:30Z", "1764244770",
                                  "2026-11-27T11:59:30", "2026-11-27", "2026-11-27T25:00:00Z"])
def test_an_unreadable_renew_time_is_an_error_not_an_expired_lease(text):
    # The safe side (datetime.fromisoformat behind an RFC 3339 shape check): a time without zone or a date
    # alone, which fromisoformat would read, is refused too; never taken as expired, which would let a second
    # sync write while the holder still runs.
    with pytest.raises(LeaseTimeError, match="renewTime"):
        expired(dict(spec(0), renewTime=text), NOW)
    assert "unreadable" in describe(dict(spec(0), renewTime=text))

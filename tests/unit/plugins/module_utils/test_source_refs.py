import pytest

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.source.source_refs import override_refs, parse_ref

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("given, ref", [
    ("feature/x", {"branch": "feature/x"}),
    ("refs/heads/main", {"branch": "main"}),
    ("refs/tags/v1.2.0", {"tag": "v1.2.0"}),
    ("tag:v1", {"tag": "v1"}),
    ("commit:abc1234", {"commit": "abc1234"}),
    (SHA, {"commit": SHA}),
    ("main@sha1:" + SHA, {"commit": SHA}),
    ({"semver": ">=1.0.0"}, {"semver": ">=1.0.0"}),
])
def test_ref_forms(given, ref):
    assert parse_ref(given) == ref


def source(name, last_applied=None):
    return dict(namespace="team", name=name, errors=[], suspended=False, renders=[dict(id=0, ref={"branch": "main"})],
                status=dict(last_applied_revision=last_applied))


def test_a_ref_for_all_sources_or_per_source():
    a, b = source("a"), source("b")
    override_refs([a, b], "tag:v2")
    assert a["renders"][0]["ref"] == b["renders"][0]["ref"] == {"tag": "v2"}
    a, b = source("a"), source("b")
    override_refs([a, b], {"team/b": SHA})
    assert a["renders"][0]["ref"] == {"branch": "main"} and b["renders"][0]["ref"] == {"commit": SHA}
    assert b["ref_override"] == {"commit": SHA} and "ref_override" not in a
    with pytest.raises(FederationError) as err:
        override_refs([source("a")], {"nope": "x"})
    assert "nope" in err.value.msg and "team/a" in err.value.msg


def test_last_applied_uses_the_status_revision_and_flags_a_source_never_applied():
    applied, fresh = source("a", "main@sha1:" + SHA), source("b")
    override_refs([applied, fresh], "last-applied")
    assert applied["renders"][0]["ref"] == {"commit": SHA}
    assert fresh["errors"] and "nothing applied yet" in fresh["errors"][0]

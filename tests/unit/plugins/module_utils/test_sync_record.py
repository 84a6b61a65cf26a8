"""Unit tests of sync recording helpers that need no cluster."""

from ansible_collections.gitops.federation.plugins.module_utils.federation.status import normalize_results
from ansible_collections.gitops.federation.plugins.module_utils.federation.sync_record import default_placed


def test_default_placement_is_the_results_plus_what_the_status_lists():
    results = normalize_results([{"cluster": "b", "status": "Applied"}, {"cluster": "c", "status": "Deleted"}])
    previous = {"clusters": [{"name": "a", "status": "Applied"}, {"name": "c", "status": "Applied"}]}
    assert default_placed(results, previous) == ["a", "b"]
    assert default_placed([], {}) == []

"""Discovery kept on disk between module runs (plugins/module_utils/k8s/discovery_cache.py)."""

import os
import time

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import Discovery, ResourceType
from ansible_collections.gitops.federation.plugins.module_utils.k8s.discovery_cache import DiscoveryCache, identity_digest


class Configuration:
    def __init__(self, host="https://127.0.0.1:6443", token="t0ken", cert_file=None):
        self.host = host
        self.api_key = {"authorization": "Bearer " + token} if token else {}
        self.cert_file = cert_file
        self.key_file = None
        self.username = None


def discovery(*kinds):
    return Discovery([ResourceType("", "v1", kind, kind.lower() + "s", True, ("get", "list"), ("status",))
                      for kind in kinds], {"": "v1"})


def test_a_stored_discovery_is_read_back_for_the_same_server_and_identity(tmp_path):
    cache = DiscoveryCache(str(tmp_path))
    cache.store(Configuration(), discovery("ConfigMap", "Secret"))
    loaded = cache.load(Configuration(), rediscover=discovery)
    found = loaded.find("v1", "ConfigMap")
    assert (found.plural, found.namespaced, found.verbs, found.subresources) == ("configmaps", True, ("get", "list"),
                                                                                 ("status",))
    assert loaded.preferred("", "Secret").kind == "Secret"


def test_other_servers_or_credentials_do_not_share_an_entry_and_the_token_is_not_in_the_file(tmp_path):
    cache = DiscoveryCache(str(tmp_path))
    cache.store(Configuration(), discovery("ConfigMap"))
    assert cache.load(Configuration(host="https://127.0.0.1:7443"), rediscover=None) is None
    assert cache.load(Configuration(token="other"), rediscover=None) is None
    assert identity_digest(Configuration()) != identity_digest(Configuration(cert_file="/c.pem", token=None))
    for name in os.listdir(str(tmp_path)):
        assert "t0ken" not in (tmp_path / name).read_text()


def test_an_expired_entry_is_not_used(tmp_path):
    cache = DiscoveryCache(str(tmp_path), ttl=60)
    cache.store(Configuration(), discovery("ConfigMap"))
    path = os.path.join(str(tmp_path), identity_digest(Configuration()) + ".json")
    old = time.time() - 61
    os.utime(path, (old, old))
    assert cache.load(Configuration(), rediscover=None) is None


def test_a_kind_missing_from_the_cache_rediscovers_once(tmp_path):
    cache = DiscoveryCache(str(tmp_path))
    cache.store(Configuration(), discovery("ConfigMap"))
    calls = []

    def rediscover():
        calls.append(1)
        return discovery("ConfigMap", "Widget")

    loaded = cache.load(Configuration(), rediscover)
    assert loaded.find("v1", "Widget").kind == "Widget"  # installed since the cache was written
    assert loaded.find("v1", "Gadget") is None
    assert loaded.preferred("", "Gadget") is None
    assert calls == [1], "one rediscovery per client, not one per miss"


def test_an_unreadable_entry_is_a_miss(tmp_path):
    cache = DiscoveryCache(str(tmp_path))
    (tmp_path / (identity_digest(Configuration()) + ".json")).write_text("{not json")
    assert cache.load(Configuration(), rediscover=None) is None


def test_the_same_client_certificate_in_another_temporary_file_is_the_same_identity(tmp_path):
    # kubeconfig loaders write embedded client certificates to a new temporary file in every process.
    first, second, other = tmp_path / "a.crt", tmp_path / "b.crt", tmp_path / "c.crt"
    first.write_text("CERT-1")
    second.write_text("CERT-1")
    other.write_text("CERT-2")
    assert identity_digest(Configuration(cert_file=str(first), token=None)) == \
        identity_digest(Configuration(cert_file=str(second), token=None))
    assert identity_digest(Configuration(cert_file=str(first), token=None)) != \
        identity_digest(Configuration(cert_file=str(other), token=None))

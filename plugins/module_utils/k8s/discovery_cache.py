# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Discovery kept on disk between module runs, per API server and credentials.

A sync run starts several module processes against the same clusters; each would otherwise rediscover
every served kind (two requests and a large document to parse). The cache file is keyed by the API
server URL and a digest of the credentials' identity (never the credentials themselves), lives
``ttl`` seconds, and is bypassed at once when a kind is not found in it: the first lookup that misses
rediscovers (one refresh per client), so a CRD installed since the cache was written is found.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import tempfile
import time

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import Discovery, ResourceType

DEFAULT_TTL = 300
FORMAT = 1


def _file_digest(path):
    """The content's digest: kubeconfig loaders write embedded certificates to a new temporary file per run."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except (IOError, OSError):
        return path


def identity_digest(configuration):
    """sha256 of the server URL and who the client is (token, client certificate, user), as a file name."""
    parts = [configuration.host or "", json.dumps(configuration.api_key or {}, sort_keys=True),
             _file_digest(configuration.cert_file), _file_digest(configuration.key_file), configuration.username or ""]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


class CachedDiscovery(Discovery):
    """A Discovery read from disk; the first kind it does not know triggers one rediscovery."""

    def __init__(self, resources, preferred, rediscover):
        super(CachedDiscovery, self).__init__(resources, preferred)
        self._rediscover = rediscover

    def _refresh(self):
        rediscover, self._rediscover = self._rediscover, None
        fresh = rediscover()
        self._by_gvk, self._preferred = fresh._by_gvk, fresh._preferred

    def find(self, api_version, kind):
        found = super(CachedDiscovery, self).find(api_version, kind)
        if found is None and self._rediscover is not None:
            self._refresh()
            found = super(CachedDiscovery, self).find(api_version, kind)
        return found

    def preferred(self, group, kind):
        found = super(CachedDiscovery, self).preferred(group, kind)
        if found is None and self._rediscover is not None:
            self._refresh()
            found = super(CachedDiscovery, self).preferred(group, kind)
        return found


class DiscoveryCache:
    def __init__(self, directory, ttl=DEFAULT_TTL):
        self.directory = directory
        self.ttl = ttl

    def _path(self, configuration):
        return os.path.join(self.directory, identity_digest(configuration) + ".json")

    def load(self, configuration, rediscover):
        """The cached Discovery for this server and identity, or None (absent, expired or unreadable)."""
        path = self._path(configuration)
        try:
            if time.time() - os.stat(path).st_mtime > self.ttl:
                return None
            with open(path) as handle:
                document = json.load(handle)
            if document.get("format") != FORMAT or document.get("server") != configuration.host:
                return None
            resources = [ResourceType(*entry) for entry in document["resources"]]
            return CachedDiscovery(resources, document["preferred"], rediscover)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, configuration, discovery):
        """Write the discovery atomically (a concurrent reader sees the old file or the new one)."""
        resources = [[r.group, r.version, r.kind, r.plural, r.namespaced, list(r.verbs), list(r.subresources)]
                     for r in discovery._by_gvk.values()]
        document = dict(format=FORMAT, server=configuration.host, resources=resources, preferred=discovery._preferred)
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".discovery-")
            with os.fdopen(fd, "w") as handle:
                json.dump(document, handle)
            os.replace(tmp, self._path(configuration))
        except OSError:
            pass  # a cache that cannot be written only costs the next run a rediscovery

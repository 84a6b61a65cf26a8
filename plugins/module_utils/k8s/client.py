# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster client: authentication, discovery and raw API requests.

One ``ClusterClient`` per cluster per module run. It reuses pooled HTTPS connections (urllib3 via
the kubernetes client's REST layer, so kubeconfig auth, exec plugins and token refresh behave as in
kubernetes.core), discovers every served kind with two requests (aggregated discovery), and counts
the requests it makes per verb so callers can prove that a no-op sync wrote nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import atexit
import copy
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter

try:
    from urllib.parse import quote, urlencode
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    from urllib import quote, urlencode

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError
from ansible_collections.gitops.federation.plugins.module_utils.private_dirs import (
    make_run_dir, private_dir, remove_empty_base, remove_stale_run_dirs)

try:
    import urllib3
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as err:  # reported by the module wrapper with missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = err

AGGREGATED_DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
WRITE_VERBS = frozenset(["POST", "PUT", "PATCH", "DELETE"])

# Transient failures worth another try: the server asks us to slow down (429) or a proxy/aggregator in
# front of it is briefly unavailable (502/503/504). A 500 is the server's (or an admission webhook's)
# verdict on this request and is not retried. Connection resets and timeouts are retried only for
# requests that are safe to repeat: reads, DELETE (a repeat finds the object gone) and server-side
# apply (declarative, so applying twice stores the same object). POST and PUT are retried only on 429,
# which the server returns before doing anything.
RETRY_STATUSES = frozenset([429, 502, 503, 504])
RETRY_ATTEMPTS = 5          # attempts in all, the first included
RETRY_BASE_DELAY = 0.25     # seconds; doubled per attempt, with jitter
RETRY_MAX_DELAY = 8.0       # cap on one wait, Retry-After included


class ApiError(FederationError):
    """A failed API request, with the server's Status reason, message and causes."""

    def __init__(self, status, reason, message, causes=None, method=None, path=None, retry_after=None):
        self.status = status
        self.retry_after = retry_after
        self.reason = reason
        self.causes = causes or []
        self.method = method
        self.path = path
        text = message or reason or "HTTP %s" % status
        super(ApiError, self).__init__(text, status=status, reason=reason)

    @classmethod
    def from_exception(cls, exc, method, path):
        status, reason, message, causes = exc.status, exc.reason, None, []
        try:
            body = json.loads(exc.body) if exc.body else {}
        except (TypeError, ValueError):
            body = {}
        if isinstance(body, dict) and body.get("kind") == "Status":
            reason = body.get("reason") or reason
            message = body.get("message")
            causes = (body.get("details") or {}).get("causes") or []
        elif status == 0:
            message = "cannot reach the API server: %s" % (exc.reason,)
        return cls(status, reason, message, causes, method, path, _retry_after(exc.headers))

    @property
    def not_found(self):
        return self.status == 404

    @property
    def forbidden(self):
        return self.status == 403

    @property
    def conflict(self):
        return self.status == 409


class ResourceType:
    """A served kind: where it lives in the API and whether it is namespaced."""

    __slots__ = ("group", "version", "kind", "plural", "namespaced", "verbs", "subresources")

    def __init__(self, group, version, kind, plural, namespaced, verbs=(), subresources=()):
        self.group = group
        self.version = version
        self.kind = kind
        self.plural = plural
        self.namespaced = namespaced
        self.verbs = tuple(verbs)
        self.subresources = tuple(subresources)

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    def path(self, namespace=None, name=None, subresource=None):
        base = "/apis/%s/%s" % (self.group, self.version) if self.group else "/api/%s" % self.version
        if self.namespaced and namespace:
            base += "/namespaces/%s" % quote(namespace, safe="")
        base += "/" + self.plural
        if name:
            base += "/" + quote(name, safe="")
        if subresource:
            base += "/" + subresource
        return base

    def __repr__(self):
        return "ResourceType(%s %s)" % (self.api_version, self.kind)


class Discovery:
    """Every kind the cluster serves, keyed by (group, version, kind), plus each group's preferred version."""

    def __init__(self, resources, preferred):
        self._by_gvk = dict(((r.group, r.version, r.kind), r) for r in resources)
        self._preferred = preferred

    def find(self, api_version, kind):
        """The served ResourceType for apiVersion+kind, or None."""
        group, version = split_api_version(api_version)
        return self._by_gvk.get((group, version, kind))

    def served_versions(self, group, kind):
        return sorted(v for (g, v, k) in self._by_gvk if g == group and k == kind)

    def preferred(self, group, kind):
        """The ResourceType of a group/kind at the group's preferred version (else any served one)."""
        version = self._preferred.get(group)
        found = self._by_gvk.get((group, version, kind))
        if found:
            return found
        for (g, v, k), resource in self._by_gvk.items():
            if g == group and k == kind:
                return resource
        return None


def _retry_after(headers):
    """Seconds from a Retry-After header given in seconds (the form the API server sends), else None."""
    try:
        value = (headers or {}).get("Retry-After")
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


def _root_cause(exc):
    while isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    return exc


def connection_cause(exc):
    """Why a connection failed, in a few words: urllib3 wraps the cause (refused, timed out, TLS) in its
    retry and pool errors, whose text repeats the host and URL."""
    cause = _root_cause(exc)
    if isinstance(cause, urllib3.exceptions.SSLError):
        inner = cause.args[0] if cause.args else cause
        return "TLS failed: %s (check the cluster's CA: certificate-authority in the kubeconfig or ca_cert; " \
               "validate_certs: false turns verification off)" % (inner,)
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        text = str(cause)
        marker = "Failed to establish a new connection: "
        return "cannot connect (%s)" % (text.split(marker, 1)[1] if marker in text else text)
    if isinstance(cause, (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError)):
        return "timed out (%s)" % (cause,)
    return str(cause)


def split_api_version(api_version):
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


def connect(auth, name=None, cache_dir=None):
    """A ClusterClient for resolved connection options (auth_options.auth_from_params); its discovery is kept
    under <cache_dir>/discovery between the modules of one run when cache_dir is given."""
    cache = None
    if cache_dir:
        # Imported here: discovery_cache builds on this file.
        from ansible_collections.gitops.federation.plugins.module_utils.k8s.discovery_cache import DiscoveryCache

        cache = DiscoveryCache(os.path.join(cache_dir, "discovery"))
    return ClusterClient(auth, name=name, discovery_cache=cache)


class ClusterClient:
    """Authenticated requests to one cluster's API, with discovery cached for the client's lifetime."""

    def __init__(self, auth, name=None, discovery_cache=None):
        if not HAS_KUBERNETES:
            raise FederationError("the kubernetes Python library is required: pip install 'kubernetes>=30.1.0,<37'",
                                  exception=str(KUBERNETES_IMPORT_ERROR))
        self.name = name
        self.timeout = float(auth.get("request_timeout") or 30.0)
        self.configuration = _configuration(auth)
        self.server = self.configuration.host
        self._rest = k8s_client.ApiClient(self.configuration).rest_client
        self._lock = threading.Lock()
        self._discovery = None
        # A DiscoveryCache (module_utils/k8s/discovery_cache.py) keeps discovery on disk between module runs.
        self.discovery_cache = discovery_cache
        self.requests = Counter()
        self.retry_attempts = RETRY_ATTEMPTS
        self.retry_base_delay = RETRY_BASE_DELAY
        # A user name sent as Impersonate-User on every request (a source applied as a ServiceAccount).
        self.impersonate = None

    def impersonating(self, user):
        """A client of the same cluster whose every request is made as ``user`` (Kubernetes impersonation:
        RBAC then bounds the requests by that user's rights; our credentials need the ``impersonate`` verb)."""
        other = copy.copy(self)
        other.impersonate = user
        return other

    # -- requests ------------------------------------------------------------------------------

    def request(self, method, path, query=None, body=None, content_type="application/json", accept="application/json"):
        """Send one request; return the decoded JSON body (None when empty). Raises ApiError.

        Transient failures are retried with bounded exponential backoff (see RETRY_STATUSES); every
        attempt is counted in ``requests``.
        """
        attempt = 1
        while True:
            try:
                return self._request_once(method, path, query, body, content_type, accept)
            except ApiError as err:
                delay = self._retry_delay(err, method, content_type, attempt)
                if delay is None:
                    raise
            with self._lock:
                self.requests["retries"] += 1
            time.sleep(delay)
            attempt += 1

    def _retry_delay(self, err, method, content_type, attempt):
        """Seconds to wait before retrying a failed attempt, or None when it must not be retried."""
        if attempt >= self.retry_attempts:
            return None
        repeatable = method in ("GET", "HEAD", "DELETE") or (
            method == "PATCH" and content_type == "application/apply-patch+yaml")
        if err.status == 429:
            pass
        elif err.status in RETRY_STATUSES or (err.status == 0 and err.reason != "TLSError"):
            if not repeatable:
                return None
        else:
            return None
        delay = min(self.retry_base_delay * (2 ** (attempt - 1)), RETRY_MAX_DELAY)
        delay *= 0.5 + random.random() / 2
        if err.retry_after is not None:
            delay = max(delay, min(err.retry_after, RETRY_MAX_DELAY))
        return delay

    def _request_once(self, method, path, query, body, content_type, accept):
        headers = {"Accept": accept, "Content-Type": content_type}
        # auth_settings() runs the token refresh hook (exec plugins, OIDC) and knows where each client
        # release keeps the bearer token.
        bearer = self.configuration.auth_settings().get("BearerToken") or {}
        if bearer.get("value"):
            headers["Authorization"] = bearer["value"]
        if self.impersonate:
            headers["Impersonate-User"] = self.impersonate
        url = self.server + path
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        if params and method in ("GET", "HEAD"):
            url += "?" + urlencode(params)
            params = None
        with self._lock:
            # Dry runs are counted apart: they use write verbs but never change the cluster.
            self.requests[method + " (dry run)" if (query or {}).get("dryRun") else method] += 1
        try:
            response = self._rest.request(method, url, query_params=params or None, headers=headers, body=body,
                                          _preload_content=False, _request_timeout=self.timeout)
        except ApiException as exc:
            raise ApiError.from_exception(exc, method, path)
        except urllib3.exceptions.HTTPError as exc:
            # A certificate the client does not trust stays untrusted: no retry.
            reason = "TLSError" if isinstance(_root_cause(exc), urllib3.exceptions.SSLError) else "ConnectionError"
            raise ApiError(0, reason, "cannot reach the API server %s: %s" % (self.server,
                                                                              connection_cause(exc)),
                           method=method, path=path)
        data = response.data
        return json.loads(data) if data else None

    @property
    def write_requests(self):
        return sum(count for verb, count in self.requests.items() if verb in WRITE_VERBS)

    # -- typed helpers -------------------------------------------------------------------------

    def get(self, resource, name, namespace=None):
        """The live object, or None when it does not exist."""
        try:
            return self.request("GET", resource.path(namespace, name))
        except ApiError as err:
            if err.not_found:
                return None
            raise

    def list(self, resource, namespace=None, label_selector=None):
        """All items of a kind (in a namespace), following continue tokens."""
        items, token = [], None
        while True:
            page = self.request("GET", resource.path(namespace), query={
                "labelSelector": label_selector, "limit": 500, "continue": token})
            for item in page.get("items") or []:
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
                items.append(item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def apply(self, resource, obj, field_manager, force=False, dry_run=False):
        """Server-side apply of obj; returns the object the server stored (or would store on dry run)."""
        metadata = obj["metadata"]
        query = {"fieldManager": field_manager, "force": "true" if force else None, "dryRun": "All" if dry_run else None}
        return self.request("PATCH", resource.path(metadata.get("namespace"), metadata["name"]), query=query,
                            body=obj, content_type="application/apply-patch+yaml")

    def delete(self, resource, name, namespace=None, uid=None, propagation="Background", dry_run=False):
        """Delete an object (only if its uid still matches, when given); False when it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        if dry_run:
            # With a DeleteOptions body the API server ignores query parameters: dryRun must be in the body.
            body["dryRun"] = ["All"]
        try:
            self.request("DELETE", resource.path(namespace, name), body=body,
                         query={"dryRun": "All" if dry_run else None})
        except ApiError as err:
            if err.not_found:
                return False
            raise
        return True

    # -- discovery -----------------------------------------------------------------------------

    def discovery(self, refresh=False):
        if self._discovery is None and not refresh and self.discovery_cache is not None:
            self._discovery = self.discovery_cache.load(self.configuration, lambda: self.discovery(refresh=True))
        if self._discovery is None or refresh:
            self._discovery = self._discover()
            if self.discovery_cache is not None:
                self.discovery_cache.store(self.configuration, self._discovery)
        return self._discovery

    def _discover(self):
        resources, preferred = [], {}
        for path in ("/api", "/apis"):
            document = self.request("GET", path, accept=AGGREGATED_DISCOVERY)
            if document.get("kind") != "APIGroupDiscoveryList":
                return self._discover_legacy()
            for group in document.get("items") or []:
                group_name = (group.get("metadata") or {}).get("name") or ""
                versions = group.get("versions") or []
                if versions:
                    preferred[group_name] = versions[0]["version"]
                for version in versions:
                    for res in version.get("resources") or []:
                        kind = (res.get("responseKind") or {}).get("kind")
                        if not kind:
                            continue
                        resources.append(ResourceType(
                            group_name, version["version"], kind, res["resource"], res.get("scope") == "Namespaced",
                            res.get("verbs") or (), [s.get("subresource") for s in res.get("subresources") or []]))
        return Discovery(resources, preferred)

    def _discover_legacy(self):
        """Per-group-version discovery for API servers older than aggregated discovery (Kubernetes < 1.26)."""
        resources, preferred = [], {"": "v1"}
        group_versions = [("", "v1", "/api/v1")]
        for group in (self.request("GET", "/apis").get("groups") or []):
            preferred[group["name"]] = group["preferredVersion"]["version"]
            for version in group.get("versions") or []:
                group_versions.append((group["name"], version["version"], "/apis/" + version["groupVersion"]))
        for group, version, path in group_versions:
            listing = self.request("GET", path)
            subresources = {}
            for res in listing.get("resources") or []:
                if "/" in res["name"]:
                    base, sub = res["name"].split("/", 1)
                    subresources.setdefault(base, []).append(sub)
            for res in listing.get("resources") or []:
                if "/" not in res["name"]:
                    resources.append(ResourceType(group, version, res["kind"], res["name"], res["namespaced"],
                                                  res.get("verbs") or (), subresources.get(res["name"], ())))
        return Discovery(resources, preferred)


_kubeconfig_files = []  # the private directory of this process, once made


def kubeconfig_files_dir():
    """Where the kubernetes client writes a kubeconfig's embedded certificates and keys (``*-data``) as files.

    A private directory of this process (private_dirs) under ``<temporary directory>/gitops-federation-<uid>``,
    removed when the module ends (remove_kubeconfig_files); one left by a killed process is removed by the next
    module run that loads a kubeconfig.
    """
    if not _kubeconfig_files:
        mine = os.path.join(tempfile.gettempdir(), "gitops-federation-%d" % os.geteuid())
        private_dir(mine)  # in a shared /tmp: ours, a real directory, 0700 (not another user's or a symlink)
        base = os.path.join(mine, "kubeconfig")
        remove_stale_run_dirs(base)
        _kubeconfig_files.append(make_run_dir(base))
        atexit.register(remove_kubeconfig_files)
    return _kubeconfig_files[0]


def remove_kubeconfig_files():
    """Remove the files of kubeconfig_files_dir: at exit of a module process, and by the in-worker action when
    its module returns (an Ansible worker ends with os._exit, which runs no atexit handler)."""
    kube_config = sys.modules.get("kubernetes.config.kube_config")
    forget = getattr(kube_config, "_cleanup_temp_files", None)
    if forget is not None:  # the client's cache of written files, which would point into the removed directory
        forget()
    while _kubeconfig_files:
        directory = _kubeconfig_files.pop()
        shutil.rmtree(directory, ignore_errors=True)
        remove_empty_base(os.path.dirname(directory), levels=2)


def _configuration(auth):
    """A kubernetes client Configuration from the shared auth options (kubernetes.core semantics)."""
    configuration = k8s_client.Configuration()
    kubeconfig = auth.get("kubeconfig")
    explicit_host = auth.get("host")
    try:
        if isinstance(kubeconfig, dict):
            k8s_config.load_kube_config_from_dict(kubeconfig, context=auth.get("context"),
                                                  client_configuration=configuration, persist_config=False,
                                                  temp_file_path=kubeconfig_files_dir())
        elif kubeconfig:
            path = os.path.expanduser(kubeconfig)
            if not os.path.exists(path):
                raise FederationError("kubeconfig file %s does not exist (option kubeconfig)" % kubeconfig)
            k8s_config.load_kube_config(config_file=path, context=auth.get("context"),
                                        client_configuration=configuration, persist_config=False,
                                        temp_file_path=kubeconfig_files_dir())
        elif not explicit_host:
            default = os.path.expanduser(k8s_config.KUBE_CONFIG_DEFAULT_LOCATION)
            if os.path.exists(default):
                k8s_config.load_kube_config(context=auth.get("context"), client_configuration=configuration,
                                            persist_config=False, temp_file_path=kubeconfig_files_dir())
            else:
                k8s_config.load_incluster_config(client_configuration=configuration)
    except FederationError:
        raise
    except Exception as exc:  # the kubernetes loaders raise ConfigException, ValueError, TypeError...
        raise FederationError("cannot load cluster connection settings (options kubeconfig/context): %s" % exc)
    if explicit_host:
        configuration.host = explicit_host
    if auth.get("api_key"):
        configuration.api_key = {"authorization": "Bearer " + auth["api_key"]}
        configuration.api_key_prefix = {}
    if auth.get("client_cert"):
        configuration.cert_file = auth["client_cert"]
    if auth.get("client_key"):
        configuration.key_file = auth["client_key"]
    if auth.get("ca_cert"):
        configuration.ssl_ca_cert = auth["ca_cert"]
    if auth.get("validate_certs") is not None:
        configuration.verify_ssl = auth["validate_certs"]
    if auth.get("proxy"):
        configuration.proxy = auth["proxy"]
    # Enough pooled connections for the engine's concurrent applies (see engine.APPLY_CONCURRENCY).
    configuration.connection_pool_maxsize = 16
    if not configuration.host:
        raise FederationError("no API server given: set kubeconfig (and context) or host")
    configuration.host = configuration.host.rstrip("/")
    return configuration

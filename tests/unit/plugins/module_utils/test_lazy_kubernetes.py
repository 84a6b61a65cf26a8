"""The light import of the kubernetes library the sync modules use (plugins/module_utils/k8s/lazy_kubernetes.py).

Run in a fresh interpreter each: the light packages replace ``kubernetes`` in the process that installs them.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))

PROBE = r"""
import json, sys
sys.path.insert(0, %(path)r)
from ansible_collections.gitops.federation.plugins.module_utils.k8s import lazy_kubernetes
installed = lazy_kubernetes.install()
from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ClusterClient, HAS_KUBERNETES
kubeconfig = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1/", "insecure-skip-tls-verify": True}}],
              "users": [{"name": "u", "user": {"token": "t0ken"}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
client = ClusterClient({"kubeconfig": kubeconfig})
try:
    client.request("GET", "/version")
    error = None
except Exception as err:
    error = type(err).__name__ + ": " + str(err)
print(json.dumps(dict(installed=installed, has=HAS_KUBERNETES, server=client.server,
                      bearer=client.configuration.auth_settings()["BearerToken"]["value"], error=error,
                      models="kubernetes.client.models" in sys.modules,
                      apis="kubernetes.client.api" in sys.modules)))
"""


def probe():
    collections = os.path.join(ROOT, ".build", "collections")
    proc = subprocess.run([sys.executable, "-c", PROBE % {"path": collections}], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_client_works_without_loading_the_api_and_model_classes():
    result = probe()
    assert result["installed"] and result["has"]
    assert result["server"] == "https://127.0.0.1:1"
    assert result["bearer"] == "Bearer t0ken"
    # A refused connection comes back as the client's own error, through the real REST layer.
    assert result["error"].startswith("ApiError: cannot reach the API server"), result["error"]
    assert not result["models"] and not result["apis"], "the light import loaded the whole library"

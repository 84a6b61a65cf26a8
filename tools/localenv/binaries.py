"""Where the test binaries are: tools/binaries/build.sh decides (KUBEBUILDER_ASSETS, cache, or build)."""

import functools
import os
import subprocess

from .processes import LocalEnvError

REQUIRED = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kustomize", "kwok")
BUILD_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "binaries", "build.sh")


@functools.lru_cache(maxsize=None)
def binaries():
    """Map of binary name (REQUIRED) to an executable path."""
    # Gitea (only the webhook tests need it) is resolved apart, by gitea_binary().
    result = subprocess.run(["bash", BUILD_SCRIPT, *sorted(REQUIRED)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise LocalEnvError(f"{BUILD_SCRIPT} failed (exit {result.returncode}); its output is above")
    found = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    missing = set(REQUIRED) - set(found)
    if missing:
        raise LocalEnvError(f"{BUILD_SCRIPT} did not provide: {', '.join(sorted(missing))}")
    return found


def binary(name):
    if name == "gitea":
        return gitea_binary()
    return binaries()[name]


@functools.lru_cache(maxsize=None)
def gitea_binary():
    """The Gitea executable (built from the Go module proxy with SQLite on first use; `make binaries` too)."""
    result = subprocess.run(["bash", BUILD_SCRIPT, "gitea"], stdout=subprocess.PIPE, text=True, check=False)
    found = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if result.returncode != 0 or "gitea" not in found:
        raise LocalEnvError(f"{BUILD_SCRIPT} gitea failed (exit {result.returncode}); its output is above")
    return found["gitea"]


def bin_dir_path():
    """A PATH prefix holding every test binary's directory (kubectl and kustomize for tools and users)."""
    return os.pathsep.join(dict.fromkeys(os.path.dirname(path) for path in binaries().values()))

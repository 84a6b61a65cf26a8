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
    result = subprocess.run(["bash", BUILD_SCRIPT], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise LocalEnvError(f"{BUILD_SCRIPT} failed (exit {result.returncode}); its output is above")
    found = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    missing = set(REQUIRED) - set(found)
    if missing:
        raise LocalEnvError(f"{BUILD_SCRIPT} did not provide: {', '.join(sorted(missing))}")
    return found


def binary(name):
    return binaries()[name]


def bin_dir_path():
    """A PATH prefix holding every test binary's directory (kubectl and kustomize for tools and users)."""
    return os.pathsep.join(dict.fromkeys(os.path.dirname(path) for path in binaries().values()))

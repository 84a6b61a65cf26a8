# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private per-process directories for credential files, and the removal of those a killed process left.

git's askpass script and CA file, and the certificates and keys the kubernetes client writes out of a
kubeconfig's ``*-data`` fields, must exist as files while a module runs. Each process gets its own directory
(0700) named ``<pid>-<start time>-<random>`` under a base directory (0700): the process removes it when it
ends, and when it is killed (SIGKILL, OOM) the next run tells its directory from one of a process still running
and removes it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import stat
import tempfile

from ansible_collections.gitops.federation.plugins.module_utils.errors import FederationError


def process_start_time(pid):
    """The start time of process pid (clock ticks since boot, Linux), or None when it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            # the command name (field 2) may hold spaces; fields after its closing parenthesis are plain
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (IOError, OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            return "?"
        return "?"


def private_dir(path):
    """Create path (0700) if needed and check that it is a real directory of ours that no one else can read."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as err:
        raise FederationError("cannot create the credential directory %s: %s" % (path, err.strerror))
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise FederationError("%s must be a directory owned by the user running the module" % path)
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


def make_run_dir(base):
    """A new private (0700) directory under base named ``<pid>-<start time>-<random>``, so the next run can
    tell a directory of a killed process from one of a process still running."""
    start = process_start_time(os.getpid()) or "?"
    for attempt in range(3):
        private_dir(base)
        try:
            return tempfile.mkdtemp(prefix="%d-%s-" % (os.getpid(), start), dir=base)
        except FileNotFoundError:  # another process removed base, empty, in between (remove_empty_base)
            if attempt == 2:
                raise
    return None


def remove_stale_run_dirs(base):
    """Remove the directories under base left by processes that no longer run (killed runs)."""
    try:
        names = os.listdir(base)
    except OSError:
        return []
    removed = []
    for name in names:
        match = re.match(r"^(\d+)-([^-]+)-", name)
        if not match:
            continue
        pid, start = int(match.group(1)), match.group(2)
        current = process_start_time(pid)
        if current is not None and (current == start or "?" in (current, start)):
            continue  # still running (or cannot tell): leave it
        shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        removed.append(name)
    return removed


def remove_empty_base(base, levels=1):
    """Remove base and up to levels - 1 of its parents when they are empty (a shared temporary directory stays
    clean); a directory still in use by another process is not empty and stays."""
    for unused in range(levels):
        try:
            os.rmdir(base)
        except OSError:
            return
        base = os.path.dirname(base)

# Copyright: contributors to the gitops.federation collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running an external command (git, kustomize) with a deadline: argument lists, never a shell, no stdin, and
on timeout the whole process group killed (git's ssh and remote helpers, kustomize's plugins with it)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import resource
import signal
import subprocess


class ProcessTimeout(Exception):
    """The command did not finish in time; it and everything it started were killed."""


def run_bounded(argv, cwd=None, env=None, timeout=None, stdout=subprocess.PIPE, preexec_fn=None):
    """(returncode, stdout bytes, stderr bytes) of argv run in a new session. OSError when it cannot start;
    ProcessTimeout after killing its session when it runs longer than timeout seconds (None: no limit).
    ``stdout`` may be an open file instead (stdout bytes are then None); ``preexec_fn`` runs in the child (limits)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=preexec_fn)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.communicate()
        raise ProcessTimeout(argv[0])
    return proc.returncode, out, err


def file_size_cap(limit):
    """A ``preexec_fn`` for run_bounded: every file the command writes is capped at ``limit`` bytes
    (RLIMIT_FSIZE: a write past it fails and SIGXFSZ stops the process)."""
    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return cap

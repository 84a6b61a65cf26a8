"""Unit tests of the one process runner git and kustomize use."""

import os
import time

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.source.process import ProcessTimeout, run_bounded


def test_output_and_exit_code():
    assert run_bounded(["sh", "-c", "echo out; echo err >&2; exit 3"]) == (3, b"out\n", b"err\n")


def test_a_timeout_kills_the_command_and_what_it_started(tmp_path):
    marker = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(ProcessTimeout):
        run_bounded(["sh", "-c", "sleep 30 & echo $! > %s; wait" % marker], timeout=0.5)
    assert time.monotonic() - started < 10
    child = int(marker.read_text())
    for attempt in range(50):  # the kill is asynchronous: give the kernel a moment to reap it
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open("/proc/%d/stat" % child) as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.1)
    else:
        pytest.fail("the child of the timed-out command still runs")


def test_a_missing_binary_is_an_os_error():
    with pytest.raises(OSError):
        run_bounded(["/nonexistent/binary"])

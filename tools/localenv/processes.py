"""Starting, probing and stopping the background servers of a local environment."""

import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request


class LocalEnvError(Exception):
    """A local server could not be started or reached; the message says which and why."""


def free_port():
    """A TCP port on loopback that is free now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(argv, log_path, env=None, cwd=None):
    """Start a long-running server in its own session, output appended to log_path; return its pid.

    Its own session means it outlives the command that started it (``make clusters-up``) and can be
    stopped as a group later.
    """
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True,
        )
    finally:
        log.close()
    return proc.pid


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def stop(pid, timeout=15, crash=False):
    """Stop a server started by spawn(): SIGTERM to its process group, SIGKILL after timeout.

    crash: SIGKILL at once, cutting what it was doing (a crash, not a shutdown).
    """
    if not pid or not alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGKILL if crash else signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def log_tail(path, lines=25):
    try:
        with open(path, "rb") as handle:
            return b"\n".join(handle.read().splitlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def wait_http(url, pid, log_path, what, timeout=180, ssl_context=None, expect=b"ok"):
    """Poll url until it answers 200 with a body containing expect; fail naming the server and its log."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive(pid):
            raise LocalEnvError(f"{what} exited during startup; last log lines of {log_path}:\n{log_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=5, context=ssl_context) as response:
                body = response.read()
                if response.status == 200 and expect in body:
                    return
                last = f"HTTP {response.status}: {body[:200]!r}"
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}: {err.read()[:300]!r}"
        except (urllib.error.URLError, OSError, ssl.SSLError) as err:
            last = str(err)
        time.sleep(0.25)
    raise LocalEnvError(
        f"{what} not ready at {url} after {timeout}s (last: {last}); log {log_path}:\n{log_tail(log_path)}"
    )


def rss_bytes(pid):
    """Resident memory of one process, from /proc (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0

"""ClusterClient.request() retries transient failures, against a tiny real HTTP server on loopback."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ansible_collections.gitops.federation.plugins.module_utils.k8s import client as client_module
from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError, ClusterClient


class Script:
    """Responses to serve, in order: (status, headers) tuples or "reset" (close the socket, no answer)."""

    def __init__(self):
        self.steps = []
        self.seen = []


def handler_for(script):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.script_seen()
            step = script.steps.pop(0) if script.steps else (200, {})
            if step == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
                self.close_connection = True
                return
            status, headers = step
            body = json.dumps({"kind": "ConfigMap", "metadata": {"name": "x"}} if status == 200 else
                              {"kind": "Status", "status": "Failure", "reason": "Busy", "message": "try later",
                               "code": status}).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def script_seen(self):
            script.seen.append(self.command)

        do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _serve
    return Handler


@pytest.fixture
def server():
    script = Script()
    httpd = HTTPServer(("127.0.0.1", 0), handler_for(script))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    script.url = "http://127.0.0.1:%d" % httpd.server_address[1]
    yield script
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sleeps(monkeypatch):
    waited = []
    monkeypatch.setattr(client_module.time, "sleep", waited.append)
    return waited


def make_client(script):
    client = ClusterClient({"host": script.url, "request_timeout": 5})
    client._rest.pool_manager.connection_pool_kw["retries"] = False  # count every attempt ourselves
    return client


def test_429_is_retried_honouring_retry_after(server, sleeps):
    server.steps = [(429, {"Retry-After": "3"}), (429, {"Retry-After": "1"})]
    client = make_client(server)
    assert client.request("GET", "/api/v1/namespaces/a/configmaps/x")["metadata"]["name"] == "x"
    assert server.seen == ["GET"] * 3
    assert sleeps[0] >= 3 and sleeps[1] >= 1
    assert client.requests["GET"] == 3 and client.requests["retries"] == 2


def test_retry_after_is_capped(server, sleeps):
    server.steps = [(429, {"Retry-After": "3600"})]
    make_client(server).request("GET", "/api")
    assert sleeps == [client_module.RETRY_MAX_DELAY]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_on_server_side_apply_are_retried_with_backoff(server, sleeps, status):
    server.steps = [(status, {})] * 3
    client = make_client(server)
    client.request("PATCH", "/api/v1/namespaces/a/configmaps/x", body={}, content_type="application/apply-patch+yaml")
    assert server.seen == ["PATCH"] * 4
    assert len(sleeps) == 3 and sleeps[0] < sleeps[2]  # exponential (jitter keeps each within [d/2, d])


def test_retries_are_bounded(server, sleeps):
    server.steps = [(503, {})] * 20
    client = make_client(server)
    with pytest.raises(ApiError) as caught:
        client.request("GET", "/api")
    assert caught.value.status == 503
    assert len(server.seen) == client_module.RETRY_ATTEMPTS and len(sleeps) == client_module.RETRY_ATTEMPTS - 1
    assert sum(sleeps) <= client_module.RETRY_MAX_DELAY * client_module.RETRY_ATTEMPTS


def test_500_and_client_errors_are_not_retried(server, sleeps):
    for status in (500, 400, 404, 409, 422):
        server.seen[:] = []
        server.steps = [(status, {})]
        with pytest.raises(ApiError):
            make_client(server).request("GET", "/api")
        assert server.seen == ["GET"], status
    assert sleeps == []


def test_post_is_retried_on_429_only(server, sleeps):
    server.steps = [(503, {})]
    with pytest.raises(ApiError):
        make_client(server).request("POST", "/api/v1/namespaces", body={})
    assert server.seen == ["POST"]
    server.seen[:] = []
    server.steps = [(429, {"Retry-After": "0"})]
    make_client(server).request("POST", "/api/v1/namespaces", body={})
    assert server.seen == ["POST", "POST"]


def test_connection_reset_is_retried_for_reads_and_apply_not_for_merge_patch(server, sleeps):
    server.steps = ["reset"]
    assert make_client(server).request("GET", "/api")["kind"] == "ConfigMap"
    assert server.seen == ["GET", "GET"]
    server.seen[:] = []
    server.steps = ["reset"]
    make_client(server).request("PATCH", "/x", body={}, content_type="application/apply-patch+yaml")
    assert server.seen == ["PATCH", "PATCH"]
    server.seen[:] = []
    server.steps = ["reset"]
    with pytest.raises(ApiError) as caught:
        make_client(server).request("PATCH", "/x", body={}, content_type="application/merge-patch+json")
    assert caught.value.status == 0 and server.seen == ["PATCH"]

"""Connection errors of the cluster client name the server and the cause in a few words (client.connection_cause).

A real TLS server on loopback with a certificate from a CA the kubeconfig does not hold; a closed port.
"""

import base64
import http.server
import json
import socket
import ssl
import subprocess
import threading

import pytest
import yaml

from ansible_collections.gitops.federation.plugins.module_utils.k8s.client import ApiError, ClusterClient


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """(url, other_ca_pem): an HTTPS server with a self-signed certificate, and an unrelated CA certificate."""
    workdir = tmp_path_factory.mktemp("tls")
    for name, subject in (("server", "/CN=127.0.0.1"), ("other", "/CN=other-ca")):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subject,
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(workdir / (name + ".key")),
                        "-out", str(workdir / (name + ".crt"))], check=True, capture_output=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"kind": "APIVersions", "versions": ["v1"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(workdir / "server.crt"), str(workdir / "server.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "https://127.0.0.1:%d" % server.server_address[1], (workdir / "other.crt").read_bytes()
    server.shutdown()


def kubeconfig(path, server, ca_pem):
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
              "clusters": [{"name": "c", "cluster": {"server": server,
                                                     "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
              "users": [{"name": "u", "user": {"token": "not-a-secret"}}]}
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_a_wrong_ca_is_refused_by_default_once_and_named(tls_server, tmp_path):
    url, other_ca = tls_server
    client = ClusterClient({"kubeconfig": kubeconfig(tmp_path / "kc", url, other_ca)})
    with pytest.raises(ApiError) as raised:
        client.request("GET", "/api")
    message = raised.value.msg
    assert message.startswith("cannot reach the API server %s: TLS failed: " % url), message
    assert "CERTIFICATE_VERIFY_FAILED" in message and "validate_certs" in message, message
    assert "HTTPSConnectionPool" not in message and "Max retries" not in message, message
    assert client.requests["GET"] == 1, "an untrusted certificate is not retried"


def test_validate_certs_false_accepts_the_wrong_ca(tls_server, tmp_path):
    url, other_ca = tls_server
    client = ClusterClient({"kubeconfig": kubeconfig(tmp_path / "kc", url, other_ca), "validate_certs": False})
    assert client.request("GET", "/api")["kind"] == "APIVersions"


def test_a_closed_port_is_named_with_its_cause(tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    url = "https://127.0.0.1:%d" % port
    client = ClusterClient({"host": url, "api_key": "not-a-secret"})
    client.retry_base_delay = 0.001
    with pytest.raises(ApiError) as raised:
        client.request("GET", "/api")
    assert raised.value.msg == "cannot reach the API server %s: cannot connect ([Errno 111] Connection refused)" % url
    assert client.requests["GET"] == 5, "a refused connection is retried (the server may be restarting)"

"""Real git servers on loopback: smart HTTP and HTTPS with basic auth, and SSH with a deploy key.

HTTP is nginx in front of fcgiwrap running ``git http-backend``; nginx serves the same repositories over
HTTPS too, with a certificate of a CA generated for this environment (``ca_cert``), which no system trusts. SSH is a private sshd on a high port
with its own host key, accepting one deploy key whose commands are confined to ``git-shell``.
Repositories are bare repos under ``<workdir>/repos``; helpers create them from a directory of
manifests and push commits and tags to them.
"""

import base64
import getpass
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from .pki import CertificateAuthority, write_private
from .processes import LocalEnvError, alive, free_port, spawn, stop, wait_http

GIT_HTTP_BACKEND_CANDIDATES = ("/usr/lib/git-core/git-http-backend", "/usr/libexec/git-core/git-http-backend")
_AUTHOR_ENV = {
    "GIT_AUTHOR_NAME": "gitops-federation tests", "GIT_AUTHOR_EMAIL": "tests@gitops-federation.invalid",
    "GIT_COMMITTER_NAME": "gitops-federation tests", "GIT_COMMITTER_EMAIL": "tests@gitops-federation.invalid",
}


def _git(*args, cwd=None):
    env = dict(os.environ, **_AUTHOR_ENV, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalEnvError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def _which(*candidates):
    for candidate in candidates:
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    raise LocalEnvError(f"none of {', '.join(candidates)} found; run tools/system-packages.sh")


class GitServers:
    """The HTTP and SSH git servers of one local environment (state in <workdir>/state.json)."""

    username = "gitops"

    def __init__(self, workdir):
        self.workdir = os.path.abspath(workdir)
        self.repos_dir = os.path.join(self.workdir, "repos")
        self.state_path = os.path.join(self.workdir, "state.json")
        self.state = {}

    @classmethod
    def load(cls, workdir):
        servers = cls(workdir)
        if os.path.exists(servers.state_path):
            with open(servers.state_path) as handle:
                servers.state = json.load(handle)
        return servers

    # -- what clients need ---------------------------------------------------------------------

    @property
    def password(self):
        return self.state["password"]

    @property
    def http_base(self):
        return f"http://127.0.0.1:{self.state['http_port']}/git"

    @property
    def https_base(self):
        return f"https://127.0.0.1:{self.state['https_port']}/git"

    @property
    def ca_cert(self):
        """The PEM file of the private CA that signed the HTTPS server's certificate."""
        return os.path.join(self.workdir, "ca.crt")

    @property
    def ssh_base(self):
        return f"ssh://{self.state['ssh_user']}@127.0.0.1:{self.state['ssh_port']}{self.repos_dir}"

    @property
    def deploy_key(self):
        return os.path.join(self.workdir, "deploy_key")

    @property
    def known_hosts(self):
        return os.path.join(self.workdir, "known_hosts")

    def http_url(self, repo):
        return f"{self.http_base}/{repo}.git"

    def https_url(self, repo):
        return f"{self.https_base}/{repo}.git"

    def ssh_url(self, repo):
        return f"{self.ssh_base}/{repo}.git"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self):
        if self.state:
            raise LocalEnvError(f"git servers already recorded in {self.state_path}; run git-down first")
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.makedirs(self.repos_dir, mode=0o700)
        self.state = {"password": base64.urlsafe_b64encode(os.urandom(18)).decode()}
        try:
            self._start_http()
            self._start_ssh()
        except BaseException:
            self.stop()
            raise
        self._save()
        return self

    def stop(self):
        for key in ("nginx_pid", "fcgiwrap_pid", "sshd_pid"):
            stop(self.state.get(key))
        self.state = {}
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _save(self):
        fd = os.open(self.state_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.state, handle, indent=2)

    def _start_http(self):
        http_dir = os.path.join(self.workdir, "http")
        os.makedirs(http_dir)
        socket_path = os.path.join(http_dir, "fcgiwrap.sock")
        self.state["fcgiwrap_pid"] = spawn(
            [_which("fcgiwrap", "/usr/sbin/fcgiwrap"), "-c", "4", "-s", f"unix:{socket_path}"],
            os.path.join(http_dir, "fcgiwrap.log"),
        )
        # nginx's {SSHA} scheme: base64(sha1(password + salt) + salt).
        salt = os.urandom(8)
        digest = hashlib.sha1(self.state["password"].encode() + salt).digest()
        with open(os.path.join(http_dir, "htpasswd"), "w") as handle:
            handle.write(f"{self.username}:{{SSHA}}{base64.b64encode(digest + salt).decode()}\n")
        ca = CertificateAuthority.create("gitops-federation local git CA")
        with open(self.ca_cert, "wb") as handle:
            handle.write(ca.cert_pem)
        cert_pem, key_pem = ca.issue("127.0.0.1", hosts=("127.0.0.1", "localhost"), server=True)
        with open(os.path.join(http_dir, "tls.crt"), "wb") as handle:
            handle.write(cert_pem)
        write_private(os.path.join(http_dir, "tls.key"), key_pem)
        port, tls_port = free_port(), free_port()
        while tls_port == port:
            tls_port = free_port()
        self.state.update(http_port=port, https_port=tls_port)
        config = _NGINX_CONFIG.format(
            user="user root;" if os.geteuid() == 0 else "", dir=http_dir, port=port, tls_port=tls_port,
            socket=socket_path, backend=_which(*GIT_HTTP_BACKEND_CANDIDATES), repos=self.repos_dir,
        )
        config_path = os.path.join(http_dir, "nginx.conf")
        with open(config_path, "w") as handle:
            handle.write(config)
        log_path = os.path.join(http_dir, "error.log")
        self.state["nginx_pid"] = spawn(
            [_which("nginx", "/usr/sbin/nginx"), "-p", http_dir, "-c", config_path, "-e", log_path], log_path
        )
        wait_http(f"http://127.0.0.1:{port}/healthz", self.state["nginx_pid"], log_path, "nginx git server",
                  timeout=30)
        if not alive(self.state["fcgiwrap_pid"]):
            raise LocalEnvError(f"fcgiwrap exited at startup; see {http_dir}/fcgiwrap.log")

    def _start_ssh(self):
        ssh_dir = os.path.join(self.workdir, "ssh")
        os.makedirs(ssh_dir, mode=0o700)
        host_key = os.path.join(ssh_dir, "ssh_host_ed25519_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "local-git-host", "-f", host_key],
                       check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy-key", "-f", self.deploy_key],
                       check=True)
        with open(self.deploy_key + ".pub") as handle:
            deploy_pub = handle.read().strip()
        git_shell = _which("git-shell", "/usr/bin/git-shell")
        with open(os.path.join(ssh_dir, "authorized_keys"), "w") as handle:
            # The deploy key may only run git's own transport commands.
            handle.write(f'restrict,command="{git_shell} -c \\"$SSH_ORIGINAL_COMMAND\\"" {deploy_pub}\n')
        port = free_port()
        user = getpass.getuser()
        self.state.update(ssh_port=port, ssh_user=user)
        config_path = os.path.join(ssh_dir, "sshd_config")
        with open(config_path, "w") as handle:
            handle.write(_SSHD_CONFIG.format(port=port, dir=ssh_dir, host_key=host_key, user=user))
        with open(host_key + ".pub") as handle:
            key_type, key_data = handle.read().split()[:2]
        with open(self.known_hosts, "w") as handle:
            handle.write(f"[127.0.0.1]:{port} {key_type} {key_data}\n")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
        log_path = os.path.join(ssh_dir, "sshd.log")
        sshd = _which("/usr/sbin/sshd")
        check = subprocess.run([sshd, "-t", "-f", config_path], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise LocalEnvError(f"sshd rejected {config_path}: {check.stderr.strip()}")
        self.state["sshd_pid"] = spawn([sshd, "-D", "-e", "-f", config_path], log_path)
        _wait_tcp_banner(port, self.state["sshd_pid"], log_path)

    # -- repositories --------------------------------------------------------------------------

    def create_repo(self, name, source_dir=None, files=None, branch="main"):
        """Create bare repo <name>.git with a first commit of source_dir and/or files; return the commit sha."""
        bare = os.path.join(self.repos_dir, f"{name}.git")
        if os.path.exists(bare):
            raise LocalEnvError(f"repository {name} already exists")
        _git("init", "-q", "--bare", f"--initial-branch={branch}", bare)
        _git("config", "http.receivepack", "true", cwd=bare)
        return self.commit(name, source_dir=source_dir, files=files or {}, message="initial commit",
                           branch=branch, replace=True)

    def commit(self, name, files=None, source_dir=None, message="update", branch="main", tag=None,
               replace=False, remove=()):
        """Commit changes to a repo's branch and push them (and an optional tag); return the commit sha.

        files maps repo-relative paths to text (None deletes the path); source_dir is copied in;
        replace=True starts from an empty tree.
        """
        bare = os.path.join(self.repos_dir, f"{name}.git")
        with tempfile.TemporaryDirectory(prefix="gitwork-") as work:
            has_branch = subprocess.run(["git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}"], cwd=bare,
                                        capture_output=True, check=False).returncode == 0
            if has_branch:
                _git("clone", "-q", "--branch", branch, bare, work)
            else:
                _git("init", "-q", f"--initial-branch={branch}", work)
            if replace:
                for entry in os.listdir(work):
                    if entry != ".git":
                        path = os.path.join(work, entry)
                        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
            if source_dir:
                shutil.copytree(source_dir, work, dirs_exist_ok=True, symlinks=True)
            for relative in remove:
                _git("rm", "-r", "-q", relative, cwd=work)
            for relative, content in (files or {}).items():
                path = os.path.join(work, relative)
                if content is None:
                    _git("rm", "-q", relative, cwd=work)
                    continue
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as handle:
                    handle.write(content)
            _git("add", "-A", cwd=work)
            _git("commit", "-q", "--allow-empty", "-m", message, cwd=work)
            sha = _git("rev-parse", "HEAD", cwd=work)
            _git("push", "-q", bare, f"HEAD:refs/heads/{branch}", cwd=work)
            if tag:
                self.tag(name, tag, sha)
        return sha

    def tag(self, name, tag, sha):
        bare = os.path.join(self.repos_dir, f"{name}.git")
        _git("tag", "-f", tag, sha, cwd=bare)


def _wait_tcp_banner(port, pid, log_path, timeout=30):
    """sshd is up once it greets a TCP client with its SSH version banner."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.1)
    with open(log_path, errors="replace") as handle:
        raise LocalEnvError(f"sshd on port {port} did not start; {log_path}:\n{handle.read()[-2000:]}")


_NGINX_CONFIG = """\
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    fastcgi_temp_path {dir}/fastcgi;
    proxy_temp_path {dir}/proxy;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {dir}/tls.crt;
        ssl_certificate_key {dir}/tls.key;
        location = /healthz {{ return 200 "ok"; }}
        location ~ ^/git(/.*)$ {{
            auth_basic "git";
            auth_basic_user_file {dir}/htpasswd;
            fastcgi_pass unix:{socket};
            fastcgi_param SCRIPT_FILENAME {backend};
            fastcgi_param GIT_PROJECT_ROOT {repos};
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param PATH_INFO $1;
            fastcgi_param REMOTE_USER $remote_user;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param GIT_CONFIG_NOSYSTEM 1;
        }}
    }}
}}
"""

_SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
AllowUsers {user}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitUserEnvironment no
AllowTcpForwarding no
X11Forwarding no
LogLevel INFO
"""

"""The production topology, as docs/production.md deploys it, on 127.0.0.1: nginx with the
configuration in docs/nginx/ (only ports and file paths substituted), TLS with a certificate
made here, in front of the WSGI server (granian: pages and the API) and the ASGI server
(uvicorn: long-poll and /mcp), in production settings (`DEBUG=0`). No Django here: the caller
gives the processes' environment (its database)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hitlportal.servers import granian_command, uvicorn_command
from tests import servers

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "nginx"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_available() -> bool:
    return os.path.exists(NGINX)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA file: verify against it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def render_site(
    directory: Path, *, wsgi_port: int, asgi_port: int, https_port: int, http_port: int
) -> Path:
    """docs/nginx/hitl.conf and its snippet as they are, with this run's ports and paths."""
    cert, key = make_certificate(directory)
    snippet = directory / "hitl-portal.conf"
    shutil.copy(DOCS / "hitl-portal.conf", snippet)
    text = (DOCS / "hitl.conf").read_text()
    for old, new in {
        "server 127.0.0.1:8001;": f"server 127.0.0.1:{wsgi_port};",
        "server 127.0.0.1:8002;": f"server 127.0.0.1:{asgi_port};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "/etc/ssl/certs/hitl.example.com.pem": str(cert),
        "/etc/ssl/private/hitl.example.com.key": str(key),
        "/etc/nginx/snippets/hitl-portal.conf": str(snippet),
    }.items():
        assert text.count(old) == 1, f"docs/nginx/hitl.conf no longer has {old!r}"
        text = text.replace(old, new)
    site = directory / "hitl.conf"
    site.write_text(text)
    temp = directory / "temp"
    temp.mkdir()
    # Started as root, nginx's workers would be www-data, who cannot enter pytest's 0700
    # temporary directories to spool bodies: keep them this user.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(
        f"""daemon off;
{user}worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {site};
}}
"""
    )
    return directory / "nginx.conf"


def production_env(env: dict[str, str], https_url: str, static_root: Path) -> dict[str, str]:
    """Production settings; `env` may carry HITL_ENCRYPTION_KEY (the one the caller's rows are
    encrypted with), else a new one."""
    from cryptography.fernet import Fernet

    return {
        "HITL_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        **env,
        "DEBUG": "0",
        "SECRET_KEY": "production-topology-test-" + os.urandom(24).hex(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": https_url,
        "HITL_SITE_URL": https_url,
        "HITL_LEDGER_SIGNING_KEY": __import__("base64").b64encode(os.urandom(32)).decode(),
        "HITL_TRUSTED_PROXIES": "127.0.0.1",
        "STATIC_ROOT": str(static_root),
    }


@dataclass
class Production:
    url: str  # https, through nginx
    http_url: str  # plain http: redirected
    ca: Path
    env: dict[str, str]
    wsgi: subprocess.Popen
    asgi: subprocess.Popen
    nginx: subprocess.Popen
    wsgi_port: int
    asgi_port: int
    directory: Path
    extra: list[subprocess.Popen] = field(default_factory=list)

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=str(self.ca), **kwargs)

    def stop(self) -> None:
        for proc in (self.nginx, self.asgi, self.wsgi, *self.extra):
            servers.stop(proc)

    def stop_wsgi(self) -> None:
        servers.stop(self.wsgi)

    def start_wsgi(self) -> None:
        self.wsgi = _start(granian_command("127.0.0.1", self.wsgi_port, 1), self.env)
        servers.wait_healthy(self.wsgi, self.wsgi_port)


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=env.get("HITL_CODE_DIR", ROOT), env=env)


def start_production(directory: Path, env: dict[str, str], ports: list[int]) -> Production:
    """`ports`: four free ports (WSGI, ASGI, nginx https, nginx http)."""
    wsgi_port, asgi_port, https_port, http_port = ports
    url = f"https://127.0.0.1:{https_port}"
    env = production_env(env, url, directory / "static")
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    conf = render_site(
        directory, wsgi_port=wsgi_port, asgi_port=asgi_port, https_port=https_port,
        http_port=http_port,
    )  # fmt: skip
    check = subprocess.run(
        [NGINX, "-t", "-c", str(conf), "-p", str(directory)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_start(granian_command("127.0.0.1", wsgi_port, 1), env))
        servers.wait_healthy(procs[-1], wsgi_port)
        procs.append(_start(uvicorn_command("127.0.0.1", asgi_port, "--log-level", "warning"), env))
        servers.wait_healthy(procs[-1], asgi_port)
        procs.append(subprocess.Popen([NGINX, "-c", str(conf), "-p", str(directory)]))
        _wait_tls(procs[-1], url, directory / "cert.pem")
    except BaseException:
        for proc in procs:
            servers.stop(proc)
        raise
    return Production(
        url=url, http_url=f"http://127.0.0.1:{http_port}", ca=directory / "cert.pem", env=env,
        wsgi=procs[0], asgi=procs[1], nginx=procs[2], wsgi_port=wsgi_port,
        asgi_port=asgi_port, directory=directory,
    )  # fmt: skip


def _wait_tls(proc: subprocess.Popen, url: str, ca: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/api/v1/health/", verify=str(ca), timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("nginx did not answer")

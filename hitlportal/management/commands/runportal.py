"""Start the whole portal: migrate, demo data, then as child processes the WSGI server
(granian: the API and the pages), the ASGI server (uvicorn: long-poll, and the front door on
--port that forwards everything else to the WSGI server), the ledger's sequencer and a
django-q2 cluster; stop them all cleanly on SIGINT/SIGTERM or when any one dies."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from hitlportal.servers import granian_command, uvicorn_command


class Command(BaseCommand):
    help = (
        "Run the portal: WSGI server (granian) + long-poll server (uvicorn, the front door) + "
        "ledger sequencer + django-q2 cluster, with demo data."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--no-demo", action="store_true", help="skip the demo data")
        parser.add_argument("--workers", type=int, default=1, help="WSGI worker processes")
        parser.add_argument(
            "--wsgi-port", type=int, default=0, help="the WSGI server's own port (default: free)"
        )
        parser.add_argument("--no-cluster", action="store_true", help="web servers only")

    def handle(self, *args, **opts):
        # Links the portal hands out (review_url, content_url) follow where it runs, unless
        # HITL_SITE_URL says otherwise (behind a proxy, a public name).
        if not os.environ.get("HITL_SITE_URL"):
            host = "127.0.0.1" if opts["host"] in ("0.0.0.0", "::", "") else opts["host"]
            os.environ["HITL_SITE_URL"] = settings.SITE_URL = f"http://{host}:{opts['port']}"
        call_command("migrate", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        if not opts["no_demo"]:
            call_command("seed_demo", stdout=self.stdout)
        manage = str(settings.BASE_DIR / "manage.py")
        # Prometheus (/metrics): the web servers and the cluster count into one directory,
        # emptied at each start (core.metrics, api.metrics).
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            metrics_dir = Path(settings.VAR_DIR) / "prometheus"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        wsgi_port = opts["wsgi_port"] or _free_port()
        wsgi = granian_command("127.0.0.1", wsgi_port, opts["workers"])
        front = [*uvicorn_command(opts["host"], opts["port"]), "--timeout-graceful-shutdown", "5"]
        front_env = {**os.environ, "HITL_WSGI_UPSTREAM": f"http://127.0.0.1:{wsgi_port}"}
        children: list[tuple[str, subprocess.Popen]] = []
        stopping = False

        def stop(signum=None, frame=None):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        base = settings.BASE_DIR
        children.append(("wsgi", subprocess.Popen(wsgi, cwd=base)))
        children.append(("asgi", subprocess.Popen(front, cwd=base, env=front_env)))
        children.append(
            ("sequencer", subprocess.Popen([sys.executable, manage, "sequencer"], cwd=base))
        )
        if not opts["no_cluster"]:
            children.append(
                ("qcluster", subprocess.Popen([sys.executable, manage, "qcluster"], cwd=base))
            )
        self.stdout.write(
            f"HITL Portal on http://{opts['host']}:{opts['port']}/ "
            f"(admin at /admin/, API at /api/v1/). Ctrl-C stops it."
        )
        self.stdout.flush()
        code = 0
        while not stopping:
            for name, proc in children:
                if proc.poll() is not None:
                    self.stderr.write(f"{name} exited with {proc.returncode}; stopping")
                    code = proc.returncode or 1
                    stopping = True
            time.sleep(0.2)
        for _name, proc in children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _name, proc in children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.stdout.write("stopped")
        if code:
            sys.exit(code)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

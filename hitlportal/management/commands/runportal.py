"""Start the whole portal: migrate, demo data, then as child processes the web server
(uvicorn serving `hitlportal.asgi` on --port: the pages, the API, long-poll and /mcp from one
app, no proxy in between), `portald` (the ledger's sequencer and the deadline timer) and a
django-q2 cluster; stop them all cleanly on SIGINT/SIGTERM or when any one dies.

Production runs the same app behind a real reverse proxy that sends the pages and the API to
the WSGI server instead (docs/production.md)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from hitlportal.servers import portal_command


class Command(BaseCommand):
    help = (
        "Run the portal: the web server (uvicorn: pages, API, long-poll, MCP) + portald "
        "(ledger sequencer, deadline timer) + django-q2 cluster, with demo data."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--no-demo", action="store_true", help="skip the demo data")
        parser.add_argument("--workers", type=int, default=1, help="web server processes")
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
        web = portal_command(opts["host"], opts["port"], opts["workers"])
        children: list[tuple[str, subprocess.Popen]] = []
        stopping = False

        def stop(signum=None, frame=None):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        base = settings.BASE_DIR
        children.append(("web", subprocess.Popen(web, cwd=base)))
        children.append(
            ("portald", subprocess.Popen([sys.executable, manage, "portald"], cwd=base))
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

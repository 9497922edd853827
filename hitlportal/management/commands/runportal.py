"""Start the whole portal: migrate, demo data, the ASGI web server and a django-q2 cluster as
child processes; stop both cleanly on SIGINT/SIGTERM or when either one dies."""

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


class Command(BaseCommand):
    help = "Run the portal: web server (ASGI, uvicorn) + django-q2 cluster, with demo data."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--no-demo", action="store_true", help="skip the demo data")
        parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
        parser.add_argument("--no-cluster", action="store_true", help="web server only")

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
        web = [
            sys.executable,
            "-m",
            "uvicorn",
            "hitlportal.asgi:application",
            "--host",
            opts["host"],
            "--port",
            str(opts["port"]),
            "--workers",
            str(opts["workers"]),
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
        ]
        # Prometheus (/metrics): the web workers and the cluster count into one directory,
        # emptied at each start (core.metrics, api.metrics).
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            metrics_dir = Path(settings.VAR_DIR) / "prometheus"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        children: list[tuple[str, subprocess.Popen]] = []
        stopping = False

        def stop(signum=None, frame=None):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        children.append(("web", subprocess.Popen(web, cwd=settings.BASE_DIR)))
        if not opts["no_cluster"]:
            children.append(
                (
                    "qcluster",
                    subprocess.Popen([sys.executable, manage, "qcluster"], cwd=settings.BASE_DIR),
                )
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

"""psycopg connection parameters of the default database, for LISTEN connections."""

from __future__ import annotations

from django.db import connections


def conninfo(application_name: str) -> str:
    from psycopg.conninfo import make_conninfo

    s = connections["default"].settings_dict
    params = {
        "dbname": s.get("NAME") or None,
        "user": s.get("USER") or None,
        "password": s.get("PASSWORD") or None,
        "host": s.get("HOST") or None,
        "port": str(s["PORT"]) if s.get("PORT") else None,
        "application_name": application_name,
    }
    for key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout"):
        if key in (s.get("OPTIONS") or {}):
            params[key] = s["OPTIONS"][key]
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})

"""One log format for everything a server prints: cmdb-sync's lines, granian's, the access log.

``text`` (the default) is a line a person reads; ``json`` is one JSON object a line, for a log
pipeline. The access log (``--access-log``) leaves out the health probes, which an orchestrator
polls every few seconds; Alembic says nothing below a warning, so neither does ``/readyz``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PROBES = frozenset({"/healthz", "/readyz"})
ACCESS_FIELDS = ("method", "path", "query_string", "status", "dt_ms", "addr")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if isinstance(record.args, dict):  # granian's access log: its fields as fields
            entry.update({name: record.args[name] for name in ACCESS_FIELDS if name in record.args})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class WithoutProbes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.args, dict) and record.args.get("path") in PROBES)


def dict_config(level: str, log_format: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server process and its workers."""
    formatter = {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "house"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"house": formatter},
        "filters": {"no_probes": {"()": f"{__name__}.WithoutProbes"}},
        "handlers": {"stderr": handler, "access": {**handler, "filters": ["no_probes"]}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "_granian": {"handlers": ["stderr"], "level": level, "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "alembic": {"level": "WARNING"},
        },
    }


def configure(level: str, log_format: str) -> None:
    import logging.config

    logging.config.dictConfig(dict_config(level, log_format))

"""JSON logs for twistd: ``twistd --logger tcpserver.logs.json_observer -n tcpserver``.

Every ``twisted.logger`` event becomes one JSON object per line on standard
output: ``time`` (ISO 8601, UTC), ``level``, ``namespace``, ``message``
(the formatted text) and the event's own structured fields - tcpserver's
log calls carry ``cid`` (connection id), ``peer``, ``event`` and the like
as fields, so a log pipeline can filter on them without parsing text.
Failures add ``traceback``.  Nothing is logged per line of data.
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import IO, Any

from twisted.logger import FileLogObserver, formatEvent

__all__ = ["event_as_json", "json_observer"]

#: twisted.logger's own bookkeeping keys, left out of the JSON
_INTERNAL = frozenset(
    {
        "log_format",
        "log_time",
        "log_level",
        "log_namespace",
        "log_source",
        "log_logger",
        "log_failure",
        "log_io",
        "log_system",
        "log_trace",
        "log_flattened",
        "log_text",
        "log_legacy",
        "message",
        "format",
        "isError",
        "system",
        "time",
        "why",
        "failure",
    }
)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


def event_as_json(event: dict[str, Any]) -> str:
    """One log event as a line of JSON (with the trailing newline)."""
    level = event.get("log_level")
    stamp = event.get("log_time")
    record: dict[str, Any] = {
        "time": (
            datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat()
            if stamp is not None
            else None
        ),
        "level": getattr(level, "name", "info"),
        "namespace": event.get("log_namespace", ""),
        "message": formatEvent(event),
    }
    for key, value in event.items():
        if key not in _INTERNAL and not key.startswith("_"):
            record[key] = _plain(value)
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return json.dumps(record, ensure_ascii=False) + "\n"


def json_observer(out: IO[str] | None = None) -> FileLogObserver:
    """A log observer writing JSON lines (twistd's ``--logger`` factory)."""
    return FileLogObserver(out if out is not None else sys.stdout, event_as_json)

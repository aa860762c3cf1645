"""Structured (JSON) logs for every service, one line per record, with the service name, and with
credentials removed from every record before it is written."""

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

REDACTED = "[REDACTED]"
# A credential in a query string (the live stream takes a short-lived ?ticket=, as browsers' EventSource cannot
# send headers; a client may still send a token there by mistake), and the password of a URL such as
# postgresql://role:password@host.
CREDENTIALS = (
    (
        re.compile(r"(?i)\b((?:access_token|token|ticket|job_token|api_key|password|secret)=)[^&\s\"']+"),
        rf"\g<1>{REDACTED}",
    ),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s\"']+:)[^@\s\"']+@"), rf"\g<1>{REDACTED}@"),
)


def redact(text: str) -> str:
    for pattern, replacement in CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


class RedactCredentials(logging.Filter):
    """Formats the record's message once, without the credentials it may carry (uvicorn's access log puts
    the full path, query string included, into its arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(RedactCredentials())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

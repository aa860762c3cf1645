"""Units: credentials are removed from log records before any service writes them."""

import logging

from epochscope_runtime.log_config import REDACTED, RedactCredentials, redact


def test_query_string_credentials_and_url_passwords_are_redacted() -> None:
    line = '127.0.0.1:51234 - "GET /v1/jobs/j/stream?access_token=eyJ.payload.sig&after=3 HTTP/1.1" 200'
    assert redact(line) == f'127.0.0.1:51234 - "GET /v1/jobs/j/stream?access_token={REDACTED}&after=3 HTTP/1.1" 200'
    url = "could not connect to postgresql://epochscope_writer:s3cr%2Ft@db:5432/epochscope"
    assert redact(url) == f"could not connect to postgresql://epochscope_writer:{REDACTED}@db:5432/epochscope"
    assert redact("GET /v1/jobs?limit=5&status=running") == "GET /v1/jobs?limit=5&status=running"


def test_the_filter_redacts_a_record_formatted_from_its_arguments() -> None:
    # uvicorn's access log passes the path as an argument of '%s - "%s %s HTTP/%s" %d'.
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/v1/jobs/j/stream?token=abc.def", "1.1", 200), None,
    )  # fmt: skip
    assert RedactCredentials().filter(record)
    assert record.getMessage() == f'127.0.0.1:1 - "GET /v1/jobs/j/stream?token={REDACTED} HTTP/1.1" 200'
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "step %d", (3,), None)
    assert RedactCredentials().filter(plain) and plain.args == (3,)  # untouched when nothing is redacted

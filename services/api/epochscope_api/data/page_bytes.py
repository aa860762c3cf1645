"""Pages bounded in bytes as well as rows (EPOCHSCOPE_PAGE_MAX_BYTES), measured in Postgres before any row leaves it.

A row's size is the octet_length of its text columns plus a fixed allowance for its other fields and the JSON
around them: octet_length reads the stored length (no detoasting), and the API never decodes a row it will not
return. A page keeps adding rows while the bytes before the next row are under the bound, so it always holds at
least one row (progress is made) and passes the bound by less than one row; the next cursor continues after the
last row returned.
"""

ROW_ALLOWANCE_BYTES = 400  # one row's numbers, timestamps, keys and JSON punctuation, beside its measured texts


def text_bytes(*columns: str) -> str:
    """SQL: the bytes of these text columns (a NULL counts 0) plus ROW_ALLOWANCE_BYTES."""
    return " + ".join([*(f"coalesce(octet_length({column}), 0)" for column in columns), str(ROW_ALLOWANCE_BYTES)])


def bounded_by_bytes(inner: str, order: str, max_bytes: str) -> str:
    """SQL: the rows of `inner` (a query with a `row_bytes` column, sorted by `order`, with its row LIMIT) up to
    where their running total of bytes passes `max_bytes` (a parameter), in `order`. Each row comes with
    `followed`: whether `inner` had another row after it (so "more rows exist" is the last returned row's)."""
    return (
        "SELECT * FROM (SELECT *, sum(row_bytes) OVER w - row_bytes AS bytes_before,"
        f" lead(true, 1, false) OVER w AS followed FROM ({inner}) scanned WINDOW w AS (ORDER BY {order})) measured"
        f" WHERE bytes_before < {max_bytes} ORDER BY {order}"
    )


MEASURE_COLUMNS = ("row_bytes", "bytes_before", "followed")  # what bounded_by_bytes adds to each row


def without_measures(fields: dict) -> dict:
    """A row's fields less the columns bounded_by_bytes added."""
    for name in MEASURE_COLUMNS:
        fields.pop(name, None)
    return fields

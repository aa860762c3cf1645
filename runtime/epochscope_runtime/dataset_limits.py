"""How many bytes a dataset may decode to: per row and per file, the same for the API and the trainer
(env: EPOCHSCOPE_DATASET_*).

A few hundred bytes of Parquet can decode to gigabytes (one large dictionary value repeated on every row), and one
JSONL or CSV line can be the whole file: the row reader measures what a row decodes to before it builds it, and
refuses a file whose row or total passes these budgets.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROW_SETTING = "EPOCHSCOPE_DATASET_ROW_MAX_BYTES"
FILE_SETTING = "EPOCHSCOPE_DATASET_FILE_MAX_DECODED_BYTES"


class DatasetLimits(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EPOCHSCOPE_DATASET_")

    row_max_bytes: int = Field(
        default=4 << 20, ge=1024, description="Most bytes one row may decode to (its line, record or Parquet row)."
    )
    file_max_decoded_bytes: int = Field(
        default=4 << 30, ge=1024, description="Most bytes all rows of one file may decode to together."
    )


class OverBudget(ValueError):
    """A row, or the file so far, decodes to more bytes than its budget; the message names the row and the setting."""


class DecodedBudget:
    """The decoded bytes of one file, charged row by row."""

    def __init__(self, limits: DatasetLimits) -> None:
        self.limits = limits
        self.total = 0

    def charge(self, row: int, size: int) -> None:
        if size > self.limits.row_max_bytes:
            raise OverBudget(
                f"row {row + 1} decodes to more than {self.limits.row_max_bytes} bytes, the limit per row"
                f" ({ROW_SETTING})"
            )
        self.total += size
        if self.total > self.limits.file_max_decoded_bytes:
            raise OverBudget(
                f"the rows up to row {row + 1} decode to more than {self.limits.file_max_decoded_bytes} bytes, the"
                f" limit per file ({FILE_SETTING})"
            )

"""The names of dataset file types and row formats: part of the job-start event, so every service knows them (the
writer included, which installs none of the dataset readers' dependencies)."""

from enum import StrEnum


class FileType(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


class RowFormat(StrEnum):
    CHAT = "chat"
    PROMPT_COMPLETION = "prompt_completion"
    CONVERSATIONAL = "conversational"
    TEXT = "text"
    PREFERENCE = "preference"  # prompt, chosen, rejected as text
    CONVERSATIONAL_PREFERENCE = "conversational_preference"  # the same as lists of messages

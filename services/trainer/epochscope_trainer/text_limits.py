"""Bounding the texts a prediction event carries, so one huge dataset row cannot jam delivery.

Each of prompt, ground truth and prediction is kept up to a limit in UTF-8 bytes
(`EPOCHSCOPE_TRAINER_PREDICTION_TEXT_MAX_BYTES`, 64 KiB by default), cut on a character boundary; the
event's `truncated` lists the fields that were cut. Three fields at the default stay well inside the
broker's 1 MiB message limit.
"""

from typing import Literal

DEFAULT_TEXT_MAX_BYTES = 64 * 1024

TextField = Literal["prompt", "ground_truth", "prediction", "completion"]


def truncate_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    """`text` cut to at most `max_bytes` UTF-8 bytes on a character boundary, and whether it was cut."""
    if len(text) * 4 <= max_bytes:  # no character is longer than 4 bytes: surely fits, no encoding needed
        return text, False
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text, False
    cut = max_bytes
    while cut > 0 and (encoded[cut] & 0xC0) == 0x80:  # step back off a continuation byte
        cut -= 1
    return encoded[:cut].decode("utf-8", "surrogatepass"), True


def bounded_texts(max_bytes: int, **texts: str | None) -> tuple[dict[str, str | None], list[TextField]]:
    """The texts, each cut to `max_bytes`, and the names of those that were cut (in argument order)."""
    bounded: dict[str, str | None] = {}
    cut: list[TextField] = []
    for name, text in texts.items():
        if text is None:
            bounded[name] = None
            continue
        bounded[name], was_cut = truncate_utf8(text, max_bytes)
        if was_cut:
            cut.append(name)  # type: ignore[arg-type]  the callers pass TextField names only
    return bounded, cut

"""Token counts of uploaded rows with each catalog model's tokenizer, without torch or transformers in the API.

A prompt is counted as the trainer's generation sees it: chat prompts rendered by the model's chat template with
`add_generation_prompt=True`, the way transformers' `apply_chat_template(..., tokenize=False)` renders them (the
same sandboxed Jinja environment, globals and special-token variables), then encoded with
`add_special_tokens=False` (generation.py); a completion is encoded the same way. Each text is cut to
`text_max_chars` characters before it is encoded (EPOCHSCOPE_TOKEN_COUNT_MAX_CHARS), so a longer one counts the
tokens of its first characters only: enough to tell that it passes any model's context, at a bounded cost.
"""

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from epochscope_runtime.catalog import CatalogModel
from epochscope_runtime.sampler import Sample

log = logging.getLogger("epochscope.api.tokens")

SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")  # transformers aliases them for templates


class TokenizerDirError(ValueError):
    """A catalog model's tokenizer_dir cannot be loaded (a configuration error: the API refuses to start)."""


class _GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` renders its body, as transformers' AssistantTracker does untracked."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Any) -> str:
        return caller()


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False
) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def compile_chat_template(source: str) -> jinja2.Template:
    """The template in transformers' environment: sandboxed, trim_blocks and lstrip_blocks, its globals."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def _plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """As transformers prepares a chat: keys whose value is None dropped, reasoning fields aliased."""
    plain = []
    for message in messages:
        message = {key: value for key, value in message.items() if value is not None}
        reasoning = next((message[key] for key in REASONING_FIELDS if message.get(key) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        plain.append(message)
    return plain


DEFAULT_TEXT_MAX_CHARS = 256 << 10


class TokenCounter:
    """Counts tokens for one model: its tokenizer.json, chat template and named special tokens."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        chat_template: str | None,
        special_tokens: dict[str, str],
        text_max_chars: int = DEFAULT_TEXT_MAX_CHARS,
    ) -> None:
        self._tokenizer = tokenizer
        self._template_source = chat_template
        self._template = compile_chat_template(chat_template) if chat_template else None
        self._special_tokens = special_tokens
        self._text_max_chars = text_max_chars

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by its sources (a compiled template does not pickle): the upload scan runs in a child process."""
        return (TokenCounter, (self._tokenizer, self._template_source, self._special_tokens, self._text_max_chars))

    def render_prompt(self, sample: Sample) -> str:
        """The text the model is asked to continue (the trainer's render_prompt)."""
        if sample.messages is None:
            return sample.text or ""
        if self._template is None:
            raise ValueError("this model has no chat template")
        return self._template.render(
            messages=_plain_messages(sample.messages),
            tools=None,
            documents=None,
            add_generation_prompt=True,
            **self._special_tokens,
        )

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text (of its first `text_max_chars` characters), encoded as a batch (the tokenizer spreads
        a batch over cores) without the character offsets, which a count does not need: the same ids as encode_batch,
        in about a third less CPU."""
        cut = [text[: self._text_max_chars] for text in texts]
        encodings = self._tokenizer.encode_batch_fast(cut, add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]

    def count_prompt(self, sample: Sample) -> int:
        return self.count([self.render_prompt(sample)])[0]


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json holds it: a string or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _chat_template(folder: Path, config: dict[str, Any]) -> str | None:
    """chat_template.jinja wins over tokenizer_config.json's `chat_template`, as in transformers; a list of named
    templates gives its `default`."""
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def load_token_counter(folder: Path, text_max_chars: int = DEFAULT_TEXT_MAX_CHARS) -> TokenCounter:
    """The counter of a tokenizer folder (tokenizer.json, and tokenizer_config.json or chat_template.jinja)."""
    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        map_file = folder / "special_tokens_map.json"
        legacy = json.loads(map_file.read_text(encoding="utf-8")) if map_file.is_file() else {}
    except Exception as exc:  # tokenizers raises a plain Exception on a bad file; OSError, JSON errors
        raise TokenizerDirError(f"cannot load the tokenizer in {folder}: {exc}") from exc
    special = {}
    for name in SPECIAL_TOKENS:
        text = _token_text(config.get(name)) or _token_text(legacy.get(name))
        if text is not None:
            special[name] = text
    return TokenCounter(tokenizer, _chat_template(folder, config), special, text_max_chars)


def load_token_counters(
    models: Sequence[CatalogModel], text_max_chars: int = DEFAULT_TEXT_MAX_CHARS
) -> dict[str, TokenCounter]:
    """One counter per catalog model with a tokenizer_dir, by model id."""
    counters = {}
    for model in models:
        if model.tokenizer_dir:
            counters[model.id] = load_token_counter(Path(model.tokenizer_dir), text_max_chars)
            log.info("token counts for model %s from %s", model.id, model.tokenizer_dir)
    return counters

"""The weights a background round generates from, while training moves the live ones."""

import copy
from typing import Any

import torch


class WeightSnapshot:
    """A private copy of the model (and tokenizer) for background rounds.

    The first `take` copies the model; later takes copy only what training changes (the trainable parameters:
    LoRA adapters, or all), into the same copy.

    Args:
        tokenizer: copied once with the model (a fast tokenizer's padding and truncation settings are state that
            each call may set: the round's thread and training's do not share one).
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._model: Any = None
        self._tokenizer: Any = None
        self._trainable: list[str] = []

    def take(self, model: Any) -> tuple[Any, Any]:
        """(the copy with `model`'s weights as they are now, its tokenizer)."""
        if self._model is None:
            self._trainable = [name for name, p in model.named_parameters() if p.requires_grad]
            self._model = copy.deepcopy(model)
            self._tokenizer = copy.deepcopy(self.tokenizer)
            return self._model, self._tokenizer
        source = dict(model.named_parameters())
        target = dict(self._model.named_parameters())
        with torch.no_grad():
            for name in self._trainable:
                target[name].copy_(source[name])
        return self._model, self._tokenizer

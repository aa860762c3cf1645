"""A LoRA model's adapters folded into its linear weights while a round generates, the trained model untouched.

Unmerged, every adapted linear layer runs three matmuls per forward (the base weight, then A and B of rank r) and
PEFT's Python around them: for a small model on a busy CPU the two thin matmuls and their overhead can cost more
than the base one (a profile of a demo-model round at a load of 15, OpenMP spinning by default: 61% of the matmul
time in the adapters; with OMP_WAIT_POLICY=PASSIVE a folded generate took 0.47-1.07x of the unfolded time).
Folded, each layer is one matmul with W + scaling * B @ A. The answers are the same up to float rounding
(x @ (W + BA) against x @ W + x @ A @ B); the round's tests pin greedy answers against the unmerged model's.

The base weights are never written: each adapted layer is replaced in its parent by a plain linear layer holding a
new folded tensor, and put back afterwards (PEFT's own merge/unmerge adds and subtracts in place, which leaves the
training weights off by rounding). The folded copies take memory while the round runs: at most FOLD_MAX_BYTES;
a model whose adapted weights are larger generates unfolded (there the base matmuls dominate anyway).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from peft.tuners.lora.layer import Linear as LoraLinear
from torch import nn

FOLD_MAX_BYTES = 2 << 30  # the transient folded copies of a round, at most


class FoldedLinear(nn.Module):
    """A linear layer over a LoRA layer's folded weight (and its base layer's bias)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight = weight
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


def foldable(layer: nn.Module) -> bool:
    """A plain LoRA linear layer, adapters on and not merged, no variant (DoRA...), not fan-in-fan-out (Conv1D), no
    bias on B (lora_bias): its forward is exactly base(x) + sum over active adapters of B(A(dropout(x))) * scaling
    (dropout is off in eval mode)."""
    return (
        isinstance(layer, LoraLinear)
        and isinstance(layer.base_layer, nn.Linear)
        and not layer.disable_adapters
        and not layer.merged
        and not layer.lora_variant
        and not layer.fan_in_fan_out
        and all(layer.lora_B[adapter].bias is None for adapter in _active(layer))  # lora_bias: not folded here
    )


@contextmanager
def folded_adapters(model: Any) -> Iterator[None]:
    """Within: each foldable LoRA layer of `model` with an active adapter replaced by its FoldedLinear, any other
    layer as it was; nothing folded when the folded weights would take more than FOLD_MAX_BYTES. Call it under
    torch.inference_mode (the folded tensors are for generation only)."""
    layers = [(name, layer) for name, layer in model.named_modules() if foldable(layer) and _active(layer)]
    weights = [layer.base_layer.weight for _, layer in layers]
    if sum(weight.numel() * weight.element_size() for weight in weights) > FOLD_MAX_BYTES:
        layers = []
    swaps: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for name, layer in layers:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            parent._modules[child] = FoldedLinear(_folded_weight(layer), layer.base_layer.bias)
            swaps.append((parent, child, layer))
        yield
    finally:
        for parent, child, layer in swaps:
            parent._modules[child] = layer


def _folded_weight(layer: Any) -> torch.Tensor:
    """W + scaling * B @ A for each active adapter, each in one pass (addmm: no B @ A matrix of its own)."""
    weight = layer.base_layer.weight
    for adapter in _active(layer):
        lora_a, lora_b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
        weight = torch.addmm(weight, lora_b.to(weight.dtype), lora_a.to(weight.dtype), alpha=layer.scaling[adapter])
    return weight


def _active(layer: Any) -> list[str]:
    return [adapter for adapter in layer.active_adapters if adapter in layer.lora_A]

"""A round's output projection (lm_head) run through oneDNN's linear kernel on a CPU, the model untouched.

Each generated token multiplies a few rows by the whole output projection (the demo model: 49,152 x 576 fp32, 113
MB, a fifth of its weights). torch's fp32 linear goes to MKL's sgemm, which on this shape (few rows, a very wide
output) runs far under the machine's memory rate; oneDNN's inner product on the same weight, as stored (no reorder,
nothing copied), took 0.63x of the CPU time per call within a round (paired on the round's own inputs) and a whole
round 0.89x of the CPU time (4 interleaved pairs, load 14-16). The logits differ from sgemm's by float rounding
(summation order); the round's tests pin greedy answers against the plain projection's.

Only the output projection: the body's linear layers through the same kernel took as long as sgemm (a round 1.02x),
and prepacking their weights costs more than a round's decode steps save (the folded weights are new every round).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class OneDnnLinear(nn.Module):
    """A linear layer over another's weight and bias, computed by oneDNN (CPU, fp32)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight = weight
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        out = torch.ops.mkldnn._linear_pointwise(rows, self.weight, self.bias, "none", [], "")
        return out.reshape(*x.shape[:-1], self.weight.shape[0])


def onednn_runs(layer: Any) -> bool:
    """A plain fp32 linear layer on the CPU, with oneDNN's linear kernel in this torch build."""
    return (
        type(layer) is nn.Linear
        and layer.weight.device.type == "cpu"
        and layer.weight.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


@contextmanager
def onednn_output_head(model: Any) -> Iterator[None]:
    """Within: the model's output projection replaced by a OneDnnLinear over the same weight where onednn_runs;
    put back afterwards. Call it under torch.inference_mode (the kernel has no backward)."""
    head = model.get_output_embeddings()
    found = [name for name, layer in model.named_modules() if layer is head] if onednn_runs(head) else []
    if not found:
        yield
        return
    parent_name, _, child = found[0].rpartition(".")
    parent = model.get_submodule(parent_name)
    parent._modules[child] = OneDnnLinear(head.weight, head.bias)
    try:
        yield
    finally:
        parent._modules[child] = head

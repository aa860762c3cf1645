"""The precision policy: which device a job trains on and in which number format.

bf16 on GPUs that support it, float32 elsewhere (CPUs are not probed for native bf16: every CPU is
treated as one without it). Activation (gradient) checkpointing stays off: TRL's SFTConfig turns it
on by default, and on a CPU a LoRA step of SmolLM2-135M took 32 s with bf16 and checkpointing, 2.2 s
without.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Precision:
    use_cuda: bool
    bf16: bool
    activation_checkpointing: bool = False  # off on every device (see the module docstring)

    @property
    def device(self) -> str:
        return "cuda" if self.use_cuda else "cpu"

    @property
    def label(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def torch_dtype(self) -> Any:
        import torch

        return torch.bfloat16 if self.bf16 else torch.float32


def precision_for(cuda_available: bool, cuda_bf16_supported: bool) -> Precision:
    """The policy itself, for the facts of one machine."""
    return Precision(use_cuda=cuda_available, bf16=cuda_available and cuda_bf16_supported)


def this_machine() -> Precision:
    import torch

    cuda = torch.cuda.is_available()
    return precision_for(cuda, cuda and torch.cuda.is_bf16_supported())

"""The OpenAI-compatible fine-tuning surface (served under /openai/v1): OpenAI's object shapes and errors over
Epochscope's own datasets, jobs, graders and checkpoints."""

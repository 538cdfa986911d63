"""Fine-tuning: plain sequential training, the lower reference (not in the paper)."""

from cl_regimes.methods.base import Method


class Finetune(Method):
    """Trains each task in turn with nothing to protect the earlier ones."""

    name = "finetune"
    reference = True

"""Fine-tuning regimes define distinct continual-learning problems: the study's library."""

__version__ = "0.1.0"

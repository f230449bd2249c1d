"""pytest-ft: evaluate and regression-test fine-tuned language models with pytest."""

__version__ = "0.1.0"

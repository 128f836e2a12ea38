"""unlearn-bench: a benchmark harness for comparing machine-unlearning methods."""

__version__ = "0.1.0"

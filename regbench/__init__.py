"""regbench: controlled benchmarks and ablations of regularization in Keras 3."""

__version__ = "0.1.0"

"""The backend seam: the engine's input pipeline and process settings for the Keras backend
in use. TensorFlow gets tf.data pipelines and XLA (`engine/tensorflow.py`); JAX and torch
get numpy batches through `keras.utils.PyDataset` (`engine/arrays.py`) and need no
TensorFlow. Both modules implement `configure`, `set_threads`, `constant`, `batches`,
`gather`, `enable_xla` and `in_pipeline`.
"""

from __future__ import annotations

import importlib


def seam():
    """The pipeline module of the Keras backend in use."""
    import keras

    name = "tensorflow" if keras.backend.backend() == "tensorflow" else "arrays"
    return importlib.import_module(f"regbench.engine.{name}")


def configure(deterministic: bool = True) -> None:
    """Process-wide settings, before any model is built."""
    seam().configure(deterministic)

"""The private Keras APIs regbench relies on, in one place: why each is needed.

Checked against Keras 3.15.1 (TensorFlow 2.21). A Keras upgrade that moves one of these breaks
here first; `tests/test_engine.py` exercises each of them.
"""

from __future__ import annotations

import keras

CHECKED_WITH = "3.15.1"


def force_jit_compile(model) -> None:
    """Compile `model`'s steps with XLA although TensorFlow op determinism is on.

    Keras turns XLA off (`model._jit_compile`) whenever TF op determinism is enabled. XLA on
    the CPU is deterministic for the ops of a stacked network (a test trains one twice and
    compares), and fuses its per-member element-wise work, about 2x faster.
    """
    model._jit_compile = True


def variable_index(optimizer, variable) -> int:
    """The slot of `variable` in the optimizer's per-variable lists (`momentums`, ...), which
    an optimizer subclass needs in `update_step`; Keras's own optimizers use the same call."""
    return optimizer._get_variable_index(variable)


def sync_state(model) -> None:
    """Bring a model's variables up to date in the middle of `fit`. On JAX, Keras keeps the
    training state in the compiled step's arrays and writes it back to the variables only
    when asked (`JAXTrainer.jax_state_sync`, which its own callbacks call); elsewhere the
    variables are always current."""
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


def tf_stateless_seed(seed):
    """A (2,) int64 seed as Keras's TensorFlow backend passes it to `tf.random.stateless_*`
    (cast to int32 by floor-mod), so masks drawn outside a layer equal the layer's own."""
    from keras.src.backend.tensorflow.random import _cast_seed

    return _cast_seed(seed)


class StepSeeds(keras.random.SeedGenerator):
    """The seeds a Keras layer's own `SeedGenerator` hands out from its draw `first` on:
    [seed, first], [seed, first + 1], ...

    Keras's random layers call only `next()` on their generator; `SeedGenerator.__init__` is
    skipped because it creates a variable, which a tf.data function cannot hold.
    """

    def __init__(self, seed, first):  # no super().__init__: see above
        self.seed, self.count = seed, first

    def next(self, ordered=True):
        import tensorflow as tf

        drawn = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(self.count, tf.int64)])
        self.count += 1
        return drawn

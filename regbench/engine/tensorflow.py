"""The TensorFlow seam: everything of the engine that is TensorFlow-specific.

Input pipelines (tf.data), a stack's per-member random draws made in them (`PipelineDraws`),
process settings and XLA. The epoch loop, evaluation, rows and the stacked layers never import
TensorFlow; `engine/backend.py` picks this module or `engine/arrays.py`.
"""

from __future__ import annotations

import numpy as np

from regbench.keras_private import StepSeeds, tf_stateless_seed

PREFETCH = 4  # batches made ahead of the step


def configure(deterministic: bool = True) -> None:
    """Process-wide settings, before any model is built."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # per-cell retracing notices are expected
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def constant(array: np.ndarray):
    """An array held once in memory, gathered from by every batch."""
    import tensorflow as tf

    return tf.constant(array)


def batches(x, y, index: np.ndarray, batch_size: int, layout: str, draws=None,
            first_step: int = 0):
    """Batches of `index` (n, streams): stream k's example i is x[index[i, k]].

    `layout` shapes a batch for the strategy's network: "alone" (x (b, *image), y (b,)),
    "branch" (x (b, K, *image), one label tensor per member) or "stack" (x (b, S, *image),
    y (b, S)). `draws(step, images)` (a stack's per-member random draws) adds its tensors to
    the inputs; batches are then numbered from `first_step` and made on every core, in order.
    """
    import tensorflow as tf

    from regbench.provenance import usable_cores

    k = index.shape[1]
    if layout == "alone":
        index = index[:, 0]

    def gather(idx):
        images = tf.gather(x, idx)
        if layout == "branch":
            return images, tuple(tf.gather(y, idx[:, j]) for j in range(k))
        return images, tf.gather(y, idx)

    dataset = tf.data.Dataset.from_tensor_slices(index).batch(batch_size)
    if draws is None:
        dataset = dataset.map(gather)
    else:
        def gather_drawn(step, idx):
            images, labels = gather(idx)
            return {"images": images, **draws(step, images)}, labels
        # Per-member draws (augmentation above all) dominate a batch: made on every core.
        dataset = dataset.enumerate(start=first_step).map(
            gather_drawn, num_parallel_calls=usable_cores(), deterministic=True)
    return _untuned(dataset.prefetch(PREFETCH))


def gather(x, index: np.ndarray) -> np.ndarray:
    """x[index] as a numpy array (index of any shape)."""
    import tensorflow as tf

    return tf.gather(x, index).numpy()


def _untuned(dataset):
    """`dataset` without tf.data's autotuning. Its background thread can hold up the deletion
    of an iterator, at the end of every `fit` call, for seconds: up to 10 s per epoch measured
    on 2 cores, against 11 s of training steps. regbench's pipelines set their buffers."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def enable_xla(net) -> None:
    """XLA for a stacked network (`keras_private.force_jit_compile`): it fuses the per-member
    element-wise work (penalties, constraints, masks, the optimizer) into few loops, about 2x
    faster. Random draws, which XLA makes differently, come with the batch (`PipelineDraws`).

    Not for a network with conv blocks: XLA has no deterministic max-pooling gradient, and
    TensorFlow refuses it under op determinism. Its convolutions, which dominate its steps,
    run as fast without XLA (TensorFlow's own kernels, measured on this project's CPU)."""
    from regbench import keras_private

    if not getattr(net, "conv_layers", None):
        keras_private.force_jit_compile(net)


def in_pipeline() -> bool:
    """A stack's random draws are made in the input pipeline (see `enable_xla`)."""
    return True


def set_threads(threads: int) -> None:
    """A worker process's share of the cores."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _draws_per_call(layer) -> int:
    """How many seeds one training call of a member's input layer draws (0: it draws none,
    as the input stage's centre crop and standardization)."""
    import keras

    if isinstance(layer, keras.layers.GaussianNoise):
        return 1
    if hasattr(layer, "draws_per_call"):  # models.PerImageRandomCrop
        return layer.draws_per_call
    if not hasattr(layer, "get_random_transformation"):
        return 0
    counter = StepSeeds(0, 0)  # a Keras image augmentation layer: count what it draws
    layer.get_random_transformation(np.zeros((1, 8, 8, 1), np.float32), training=True,
                                    seed=counter)
    return counter.count


def _drawn(layer, images, seeds):
    """A member's input layer in training, drawing from `seeds` (`StepSeeds`) what its own
    generator draws at that step."""
    import keras

    if seeds is None:  # draws nothing
        return layer(images, training=True)
    if isinstance(layer, keras.layers.GaussianNoise):  # as its `call`
        return images + keras.random.normal(keras.ops.shape(images), stddev=layer.stddev,
                                            dtype=layer.compute_dtype, seed=seeds)
    if hasattr(layer, "cropped"):  # models.PerImageRandomCrop
        return layer.cropped(images, seeds)
    change = layer.get_random_transformation(images, training=True, seed=seeds)
    return layer.transform_images(images, change, training=True)


class PipelineDraws:
    """A stack's random draws for one batch, made in the input pipeline (TensorFlow): the
    dropout masks and each member's transformed images (its random crop, augmentation and
    Gaussian noise).

    Training step t of a Keras layer seeded `seed` draws with seeds [seed, t * k + i] (its
    `SeedGenerator` counts draws; k per call), so member (s, a) at step t gets exactly the
    masks and image transforms its cell alone gets at step t. Drawn outside XLA, which
    draws other numbers for the same seeds; the images are transformed by the layers' own
    TensorFlow kernels.
    """

    def __init__(self, dropout: list, augment: list | None = None, prepare: list = ()):
        self.dropout = dropout
        self.augment = augment
        self.prepare = list(prepare)  # the model's input stage, before augmentation
        self.per_call = {id(layer): _draws_per_call(layer)
                         for row in augment or [] for layers in row for layer in layers}

    def __call__(self, step, images) -> dict:
        """`images`: (B, S, *image) -> masks by layer name, (B, S, A, width) each, and
        "augmented" images, (B, S, A, pixels)."""
        import tensorflow as tf

        batch = tf.shape(images)[0]
        out = {}
        for layer in self.dropout:
            ones = tf.ones((batch, layer.width))
            rows = []
            for s, a_rates in enumerate(layer.rates):
                row = []
                for a, rate in enumerate(a_rates):
                    if rate > 0:
                        seed = tf.stack([tf.constant(int(layer.seeds[s, a]), tf.int64), step])
                        row.append(tf.nn.experimental.stateless_dropout(
                            ones, rate=float(rate), seed=tf_stateless_seed(seed)))
                    else:
                        row.append(ones)
                rows.append(tf.stack(row, axis=1))
            out[layer.name] = tf.stack(rows, axis=1)
        if self.augment:
            from regbench.models import prepared

            images = prepared(images, self.prepare)
            rows = []
            for s, row in enumerate(self.augment):
                members = []
                for layers in row:
                    h = images[:, s]
                    for layer in layers:
                        per_call = self.per_call[id(layer)]
                        h = _drawn(layer, h, StepSeeds(layer.seed, step * per_call)
                                   if per_call else None)
                    members.append(tf.reshape(h, (batch, -1)))
                rows.append(tf.stack(members, axis=1))
            out["augmented"] = tf.stack(rows, axis=1)
        return out

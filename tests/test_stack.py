"""Stacked networks: their layers against Keras's, and XLA's determinism."""

from __future__ import annotations

import pytest

from regbench import engine
from regbench.engine.data import scaled
from regbench.study import parse_study

STUDY = {
    "datasets": ["mnist"],
    "seeds": [1],
    "model": {"hidden": [16]},
    "training": {"batch_size": 50, "epochs": 2, "train_subset": 600, "learning_rate": 0.02},
}
COMPARED = ["train_acc", "train_xent", "val_acc", "val_xent", "test_acc", "test_xent",
            "penalty", "l1_norm", "l2_norm", "epochs_run", "best_epoch", "stopped_epoch"]


@pytest.mark.slow
def test_stack_is_deterministic_under_xla(data_dir):
    """Stacks without random draws run under XLA (forced on despite op determinism)."""
    study = {**STUDY, "seeds": [1, 2], "design": {"kind": "explicit",
                                                    "arms": ["none", "l1", "max_norm"]}}
    cells = parse_study(study, "xla").cells()
    first, second = (engine.fit(cells, str(data_dir)) for _ in range(2))
    for a, b in zip(first, second):
        assert {k: a[k] for k in COMPARED} == {k: b[k] for k in COMPARED}
        for name in ("val_xent", "val_acc", "xent", "acc", "loss"):
            assert a["history"][name] == b["history"][name]


@pytest.mark.parametrize("shared_input", [False, True])
def test_member_penalty_has_the_gradient_of_the_members_keras_penalties(shared_input):
    import keras
    import numpy as np
    import tensorflow as tf

    from regbench.engine.stack_layers import MemberPenalty

    rng = np.random.default_rng(0)
    l1 = np.array([[0.0, 0.01, 0.0], [0.02, 0.0, 0.5]], np.float32)
    l2 = np.array([[0.0, 0.0, 0.01], [0.03, 0.0, 0.0]], np.float32)
    kernel = tf.Variable(rng.normal(size=(2, 5, 3, 4) if shared_input else (2, 3, 5, 4))
                         .astype(np.float32))
    kernel[0, 0].assign(tf.zeros_like(kernel[0, 0]))  # sign(0) = 0, as Keras's |w| gradient
    with tf.GradientTape(persistent=True) as tape:
        expected = sum(
            keras.regularizers.L1L2(l1=float(l1[s, a]), l2=float(l2[s, a]))(
                kernel[s, :, a] if shared_input else kernel[s, a])
            for s in range(2) for a in range(3))
        got = MemberPenalty(l1, l2, shared_input, len(kernel.shape))(kernel)
    assert float(got) == 0.0  # the value is added once per epoch instead (`penalty()`)
    np.testing.assert_allclose(tape.gradient(got, kernel), tape.gradient(expected, kernel),
                               rtol=1e-6, atol=1e-7)
    # no term for absent factors
    assert MemberPenalty(l1, 0 * l2, shared_input, len(kernel.shape)).l2 is None


@pytest.mark.slow
def test_pipeline_augmentation_equals_the_layers_alone(data_dir):
    """A stack's input pipeline draws, at every training step, exactly the augmented images
    the cell's own Keras layers draw alone (rotation, shift and flip; no tolerance)."""
    import numpy as np
    import tensorflow as tf

    from regbench import data
    from regbench.engine.tensorflow import PipelineDraws
    from regbench.models import augmentation_layers

    study = {**STUDY, "seeds": [1, 2], "techniques": {"augmentation": {"flip": True}},
             "design": {"kind": "explicit", "arms": ["augmentation"]}}
    cells = parse_study(study, "draws").cells()
    images = scaled(data.load("mnist", data_dir=str(data_dir)).x_train[:8])
    alone = [augmentation_layers(cell.arm, cell.seed, False, "") for cell in cells]
    draws = PipelineDraws([], [[augmentation_layers(cell.arm, cell.seed, False, "")]
                               for cell in cells])
    assert sorted(draws.per_call.values()) == [1, 1, 1, 1, 2, 2]  # rotate, flip; shift: 2
    batch = tf.constant(np.stack([images, images[::-1]], axis=1))  # (B, seeds, 28, 28, 1)
    for step in range(3):
        piped = draws(tf.constant(step, tf.int64), batch)["augmented"].numpy()
        for s, layers in enumerate(alone):
            h = batch[:, s]
            for layer in layers:
                h = layer(h, training=True)
            assert np.array_equal(piped[:, s, 0], h.numpy().reshape(len(images), -1)), step
        assert not np.array_equal(piped[:, 0, 0], images.reshape(len(images), -1))



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




@pytest.mark.slow
def test_pipeline_random_crop_and_noise_equal_the_layers_alone(data_dir):
    """Where a member crops at random, the pipeline runs each member's whole input stage
    (random or centre crop, standardization, augmentation, Gaussian noise) and draws at every
    step exactly what the cell's own layers draw alone."""
    import numpy as np
    import tensorflow as tf

    from regbench import data
    from regbench.engine.tensorflow import PipelineDraws
    from regbench.models import augmentation_layers, input_layers

    study = {**STUDY, "seeds": [1, 2], "model": {"hidden": [16], "crop": 24,
                                                 "standardize": True},
             "design": {"kind": "explicit", "arms": [
                 "random_crop+gaussian_noise+augmentation", "gaussian_noise"]}}
    cells = parse_study(study, "draws").cells()

    def layers(cell):
        return (input_layers(cell.model, cell.arm, cell.seed)
                + augmentation_layers(cell.arm, cell.seed, False, ""))

    by_seed = [[c for c in cells if c.seed == seed] for seed in (1, 2)]
    draws = PipelineDraws([], [[layers(cell) for cell in row] for row in by_seed])
    # crop 2, standardization 0, rotation 1, shift 2, noise 1; the centre crop 0
    assert sorted(draws.per_call.values()) == sorted([2, 0, 1, 2, 1, 0, 0, 1] * 2)
    images = scaled(data.load("mnist", data_dir=str(data_dir)).x_train[:8])
    batch = tf.constant(np.stack([images, images[::-1]], axis=1))  # (B, seeds, 28, 28, 1)
    alone = [[layers(cell) for cell in row] for row in by_seed]
    for step in range(3):
        piped = draws(tf.constant(step, tf.int64), batch)["augmented"].numpy()
        for s, row in enumerate(alone):
            for a, member in enumerate(row):
                h = batch[:, s]
                for layer in member:
                    h = layer(h, training=True)
                assert np.array_equal(piped[:, s, a], h.numpy().reshape(len(images), -1)), (
                    step, s, a)
    first, second = piped[:, 0, 0], piped[:, 0, 1]  # random crop and centre crop differ
    assert not np.array_equal(first, second)


def test_a_stacks_cross_entropy_comes_from_the_logits_as_alone():
    """An example a member gets confidently wrong (true class 30 nats below the others) costs
    it 30 nats, as alone on TensorFlow, not the 16.1 of probabilities clipped at 1e-7."""
    import keras
    import numpy as np

    from regbench.engine.stack_layers import batch_first, member_xent

    if keras.backend.backend() != "tensorflow":
        pytest.skip("only TensorFlow's softmax keeps its logits")
    import tensorflow as tf

    logits = np.zeros((1, 1, 2, 3), np.float32)  # (S, A, batch, classes)
    logits[0, 0, 0, 0] = -30.0  # example 0, true class 0
    labels = np.zeros((2, 1, 1), np.int32)

    @tf.function
    def stacked(z):
        return member_xent(labels, batch_first(keras.activations.softmax(z)))

    @tf.function
    def alone(z):
        return keras.losses.sparse_categorical_crossentropy(labels[:, 0, 0],
                                                            keras.activations.softmax(z))

    expected = alone(tf.constant(logits[0, 0])).numpy()
    assert expected[0] == pytest.approx(30.0 + np.log(2), rel=1e-4)
    assert stacked(tf.constant(logits)).numpy()[:, 0, 0] == pytest.approx(expected, rel=1e-5)

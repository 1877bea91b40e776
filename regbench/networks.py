"""The network of one cell: one of regbench's own (`models.py`) or the user's
(`user_models.py`, a study's `[model] builder`)."""

from __future__ import annotations

from regbench.recipe import Arm, Model


def build(model: Model, arm: Arm, input_shape: tuple, classes: int, seed: int,
          flip_ok: bool = False):
    """The cell's Keras network, with the arm's techniques in place."""
    if model.builder:
        from regbench import user_models

        return user_models.build(model, arm, input_shape, classes, seed, flip_ok)
    from regbench.models import build_model

    return build_model(model, arm, input_shape, classes, seed, flip_ok)

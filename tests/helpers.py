"""Helpers shared by the training tests (fixtures live in conftest.py)."""

import torch

import models
from group_scissor.data import load_dataset
from group_scissor.train import Callback


class StopAt(Callback):
    """Simulates a kill right after epoch k was checkpointed."""

    def __init__(self, k):
        self.k = k

    def on_epoch_begin(self, trainer):
        if trainer.epoch == self.k:
            raise KeyboardInterrupt


def fresh(seed=3):
    """A freshly initialised LeNet, seeded."""
    torch.manual_seed(seed)
    return models.get("lenet")


def small_digits(n: int):
    """The embedded digits set with its training split cut to n samples (quick tests)."""
    d = load_dataset("digits")
    d.train.x, d.train.y = d.train.x[:n], d.train.y[:n]
    return d

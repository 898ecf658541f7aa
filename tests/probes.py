"""Probes on a model: what its forward passes held."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def forward_passes(model):
    """Records the batch size of every forward pass of ``model``'s backbone."""
    sizes = []

    def hook(_module, args):
        sizes.append(int(args[0].shape[0]))

    handle = model.backbone.register_forward_pre_hook(hook)
    try:
        yield sizes
    finally:
        handle.remove()

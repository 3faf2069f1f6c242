"""Torch threads for the model tests (the tiny presets are cached under ~/.cache/fourdthinker)."""

import torch

torch.set_num_threads(2)

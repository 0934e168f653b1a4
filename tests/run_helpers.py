"""Helpers and fixtures shared by the tests split out of tests/launch/test_launch.py."""
import os

import torch




def _weights(run_dir):
    return torch.load(os.path.join(run_dir, "checkpoint.pth"), weights_only=True)["model"]


"""Exits with the code given in argv[1] before a single step (a --help, say)."""
import sys

import torch

model = torch.nn.Linear(4, 1)
sys.exit(int(sys.argv[1]))

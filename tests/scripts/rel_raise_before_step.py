"""Raises while loading its data, before any step."""
import torch

model = torch.nn.Linear(4, 1)
raise FileNotFoundError("data/train.csv")

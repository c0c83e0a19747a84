"""Asks the user a question before training."""
import torch

model = torch.nn.Linear(4, 1)
answer = input("continue? ")

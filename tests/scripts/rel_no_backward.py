"""Evaluates a model and never trains it: no backward(), no step."""
import torch

model = torch.nn.Linear(4, 1)
with torch.no_grad():
    for _ in range(3):
        model(torch.randn(16, 4))

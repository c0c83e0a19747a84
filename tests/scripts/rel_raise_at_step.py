"""Trains three steps, then raises from the user's own code."""
import torch

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)


def check_batch(step):
    if step == 3:
        raise ValueError("batch 3 has the wrong shape")


for step in range(10):
    check_batch(step)
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()

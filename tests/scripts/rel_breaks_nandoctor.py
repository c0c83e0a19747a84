"""Trains two steps, then breaks nandoctor's own watch from inside, standing
in for a bug of nandoctor's in the child (the KeyError a compiled model once
caused in Watch.finish)."""
import torch

from nandoctor.capture import watch

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for step in range(2):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()


def broken_finish(self):
    raise KeyError("class")


watch.Watch.finish = broken_finish

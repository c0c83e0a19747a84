"""A loss that spikes for a few steps (batches of mislabelled targets) and
recovers, gradient clipping keeping the updates small: not a divergence
while the spike is shorter than watch.runaway_patience."""
import argparse

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--spike-steps", type=int, default=3)
args = parser.parse_args()

torch.manual_seed(0)
x = torch.randn(128, 4)
y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

for step in range(120):
    # Steps 60.. see targets scaled 10^4: the loss jumps ~10^8-fold.
    bad = 60 <= step < 60 + args.spike_steps
    target = y * 1e4 if bad else y
    loss = torch.nn.functional.mse_loss(model(x), target)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if step % 10 == 0 or bad:
        print(f"step {step} loss {loss.item():.4g}")

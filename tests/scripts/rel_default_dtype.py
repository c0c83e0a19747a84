"""Switches torch's default dtype to float64 before building the model."""
import torch

torch.set_default_dtype(torch.float64)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for step in range(3):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
assert model.weight.dtype == torch.float64

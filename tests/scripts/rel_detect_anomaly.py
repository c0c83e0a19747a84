"""Turns on anomaly detection itself; step 2 takes log(0) in its loss."""
import torch

torch.autograd.set_detect_anomaly(True)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(16, 4)
for step in range(4):
    opt.zero_grad()
    scale = 0.0 if step == 2 else 1.0
    loss = -torch.log(torch.sigmoid(model(x)) * scale).mean()
    loss.backward()
    opt.step()

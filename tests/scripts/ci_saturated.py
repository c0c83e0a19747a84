"""A sigmoid pushed into saturation, trained with a squared error: finite and
healthy, but a warning sign a `--fail-on warning` check fails on."""
import torch

torch.manual_seed(0)
x = torch.randn(64, 4)
y = (x[:, 0] > 0).float().unsqueeze(1)
model = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Sigmoid())
with torch.no_grad():
    model[0].weight.mul_(500.0)  # outputs of exactly 0.0 or 1.0
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for step in range(30):
    loss = torch.nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

"""Hand-written BCE whose log(1 - p) hits log(0) at step 0: must fail."""
import torch

torch.manual_seed(0)
x = torch.randn(64, 4)
y = (x[:, 0] > 0).float()
model = torch.nn.Linear(4, 1)
with torch.no_grad():
    model.weight.mul_(200.0)  # saturates the sigmoid: p == 1.0 exactly
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for step in range(20):
    p = torch.sigmoid(model(x)).squeeze(1)
    loss = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

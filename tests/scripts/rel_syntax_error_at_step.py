"""Trains two steps, then compiles a user-supplied expression that is not
valid Python: a SyntaxError raised while the script runs."""
import torch

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for step in range(2):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
schedule = compile("lambda step: 0.1 *", "<schedule>", "eval")

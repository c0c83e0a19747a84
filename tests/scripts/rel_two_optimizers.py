"""A GAN-shaped loop: the generator's optimizer is created first and steps
once per iteration; the discriminator's steps twice."""
import torch

gen, disc = torch.nn.Linear(2, 4), torch.nn.Linear(4, 1)
opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3)
opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
bce = torch.nn.BCEWithLogitsLoss()
real = torch.randn(8, 4)
for iteration in range(4):
    for _ in range(2):
        opt_d.zero_grad()
        fake = gen(torch.randn(8, 2)).detach()
        loss_d = bce(disc(real), torch.ones(8, 1)) + bce(disc(fake), torch.zeros(8, 1))
        loss_d.backward()
        opt_d.step()
    opt_g.zero_grad()
    loss_g = bce(disc(gen(torch.randn(8, 2))), torch.ones(8, 1))
    loss_g.backward()
    opt_g.step()

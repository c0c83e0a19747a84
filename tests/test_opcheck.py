"""The replay's op checks in-process, on ops written here: what a shortcut
of the hot path (ops that only carry values along, in-place ops, indexing,
the optimizer's step) must still see."""
from __future__ import annotations

import io

import pytest
import torch

from nandoctor.capture.events import EventWriter
from nandoctor.capture.opcheck import OpChecker
from nandoctor.plan import Plan


@pytest.fixture
def checker():
    checker = OpChecker(Plan(script="train.py", check_steps=[0]),
                        EventWriter(io.StringIO()))
    checker.install()
    checker.step_begins(0)
    checker.module_entered(torch.nn.Identity())  # the model runs: forward pass
    yield checker
    checker.remove()


def test_a_mask_carried_through_copies_still_explains_the_softmax_nan(checker):
    scores = torch.zeros(2, 3)
    hidden = torch.tensor([[True, True, True], [False, True, False]])
    masked = scores.masked_fill(hidden, float("-inf"))
    carried = torch.cat([masked.clone(), masked.clone()]).clamp_max(10.0)
    torch.softmax(carried, dim=-1)
    found = checker.found["forward"]
    assert found["op"] == "aten._softmax"
    assert found["masked_from"]["op"] == "aten.masked_fill"


def test_a_carry_op_on_finite_values_produces_nothing(checker):
    x = torch.randn(4, 4)
    torch.relu(x).clone().abs()
    assert checker.found == {}


def test_an_in_place_op_with_a_non_finite_operand_is_not_its_producer(checker):
    with torch.no_grad():
        outside = torch.tensor([1.0, float("nan")])  # made before the checks
    checker.found.clear()
    weights = torch.ones(2)
    weights.add_(outside)
    assert "forward" not in checker.found


def test_an_in_place_op_that_overflows_finite_values_is_the_producer(checker):
    weights = torch.full((2,), 3e38)
    weights.mul_(10.0)
    found = checker.found["forward"]
    assert found["op"] == "aten.mul_"
    assert found["output"]["posinf"] == 2


def test_indexing_passes_and_the_next_op_is_still_named(checker):
    rows = torch.zeros(5, 3)
    picked = torch.stack([rows[i] for i in range(5)])
    torch.log(picked)
    found = checker.found["forward"]
    assert found["op"] == "aten.log" and found["call"] == "torch.log"


def test_the_optimizer_step_is_checked_with_its_call_sites_off(checker):
    param = torch.nn.Parameter(torch.ones(2))
    param.grad = torch.full((2,), 3e38)
    optimizer = torch.optim.SGD([param], lr=10.0)
    checker.module_left(torch.nn.Identity())
    checker.update_begins()
    optimizer.step()
    checker.update_ends()
    found = checker.found["update"]
    assert found["op"].startswith("aten.")
    # The torch-function mode is back for the next forward pass.
    torch.log(torch.zeros(1))
    assert checker.found["forward"]["call"] == "torch.log"

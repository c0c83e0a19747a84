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


def _unchecked_update_checker(**plan: object) -> OpChecker:
    checker = OpChecker(Plan(script="train.py", check_steps=[0], **plan),
                        EventWriter(io.StringIO()))
    checker.install()
    checker.step_begins(0)
    return checker


def test_an_update_the_watch_did_not_flag_runs_unchecked():
    checker = _unchecked_update_checker(check_update=False)
    try:
        param = torch.nn.Parameter(torch.ones(2))
        param.grad = torch.full((2,), 3e38)
        optimizer = torch.optim.SGD([param], lr=10.0)
        checker.update_begins()
        optimizer.step()
        checker.update_ends()
        assert "update" not in checker.found
        # The checks are back for what follows the update.
        checker.module_entered(torch.nn.Identity())
        torch.log(torch.zeros(1))
        assert checker.found["forward"]["call"] == "torch.log"
    finally:
        checker.remove()


def test_a_backward_producer_is_named_with_its_forward_line(checker):
    x = torch.zeros(3, requires_grad=True)
    root = torch.sqrt(x); line = _line_above()  # noqa: E702
    loss = root.sum()
    checker.module_left(torch.nn.Identity())
    checker.backward_begins(loss)
    loss.backward()
    checker.backward_ends()
    found = checker.found["backward"]
    assert found["node"] == "SqrtBackward0"
    assert (found["forward_file"], found["forward_line"]) == (__file__, line)


def _line_above() -> int:
    import sys

    return sys._getframe(1).f_lineno


def test_forward_inputs_go_once_backward_has_passed_their_call(checker):
    """Held to the step's end (or by a node hook until the garbage
    collector ran), activations kept backward from reusing their memory."""
    import gc
    import weakref

    gc.disable()
    try:
        weight = torch.ones(64, 64, requires_grad=True)
        activation = torch.ones(8, 64) @ weight
        kept = weakref.ref(activation)
        loss = torch.tanh(activation).sum()
        checker.module_left(torch.nn.Identity())
        checker.backward_begins(loss)
        loss.backward()
        checker.backward_ends()
        del activation, loss
        assert kept() is None
    finally:
        gc.enable()


def test_a_mask_from_a_data_loader_explains_the_softmax_nan(checker):
    """Batches are fetched unchecked when the data is not in question, but
    a -inf mask they carry is still known as intentional."""
    from torch.utils.data import DataLoader, TensorDataset

    masks = torch.zeros(4, 3)
    masks[1] = float("-inf")  # one sample with every position masked
    loader = DataLoader(TensorDataset(torch.randn(4, 3), masks), batch_size=4)
    for scores, mask in loader:
        torch.softmax(scores + mask, dim=-1)
    found = checker.found["forward"]
    assert found["op"] == "aten._softmax"
    assert found["masked_from"]["op"] == "DataLoader"


def test_a_backward_inside_an_unchecked_update_keeps_the_update_unchecked():
    """An LBFGS closure runs backward inside optimizer.step(): its end must
    not put the checks back in the middle of the update."""
    checker = _unchecked_update_checker(check_update=False)
    try:
        checker.update_begins()
        loss = (torch.ones(2, requires_grad=True) * 2).sum()
        checker.backward_begins(loss)
        loss.backward()
        checker.backward_ends()
        torch.full((2,), 3e38).mul_(10.0)
        assert checker.found == {}
        checker.update_ends()
        assert checker.enabled
    finally:
        checker.remove()

"""The watch's per-step shortcuts record what the plain computations would."""
from __future__ import annotations

import io
import math

import torch

from nandoctor.capture.events import EventWriter
from nandoctor.capture.tensors import all_finite
from nandoctor.capture.watch import Watch, _norms
from nandoctor.plan import Plan


def _watch() -> Watch:
    return Watch(Plan(script="train.py"), EventWriter(io.StringIO()))


def test_norms_of_mixed_dtypes_equal_each_norm_cast_to_float32() -> None:
    tensors = [torch.randn(5, dtype=dtype) * 3 for dtype in
               (torch.float16, torch.bfloat16, torch.float32, torch.float64)]

    each = [float(n.float()) for n in torch._foreach_norm(tensors)]

    assert _norms(tensors) == each


def test_norms_need_no_detach_for_parameters_that_require_grad() -> None:
    param = torch.nn.Parameter(torch.full((4,), 2.0))

    assert _norms([param]) == [4.0]


def test_all_finite_builds_no_graph_on_a_tensor_that_requires_grad() -> None:
    x = torch.ones(3, requires_grad=True) * 2

    assert all_finite(x)
    assert not all_finite(x.detach() / 0 * 0)


def test_a_tensor_written_after_its_check_is_checked_again() -> None:
    watch = _watch()
    output = torch.ones(4)
    assert watch._check(output, "forward", "output of Net")

    output[2] = math.nan

    assert not watch._check(output, "forward", "prediction entering Loss")
    assert watch.first_event["tensor"] == "prediction entering Loss"


def test_a_different_tensor_with_the_same_values_is_checked_on_its_own() -> None:
    watch = _watch()
    assert watch._check(torch.ones(4), "forward", "output of Net")

    bad = torch.tensor([1.0, math.inf])

    assert not watch._check(bad, "forward", "output of Head")


def test_module_of_a_parameter_is_named_once_its_model_is_known() -> None:
    watch = _watch()
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    weight = model[1].weight
    assert watch._module_name(weight) == "(top level)"  # no root seen yet

    watch._roots.add(model)

    assert watch._module_name(weight) == "1"

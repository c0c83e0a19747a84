"""The replay's op-level checks on real (small) scripts: the first producer,
its line, backward attribution, the update phase, data entering torch, and
intentional -inf that is no fault."""
from __future__ import annotations

from conftest import SCRIPTS

from nandoctor.plan import Plan
from nandoctor.runner import PassResult, run_pass

FAULTS = str(SCRIPTS / "faults.py")


def replay(script: str, step: int, *args: str, data: bool = False) -> PassResult:
    plan = Plan(script=script, args=list(args), check_steps=[step],
                max_steps=step + 1, stop_after_nonfinite=0, check_data=data)
    return run_pass("replay", plan, timeout=120)


def producer(result: PassResult, key: str) -> dict:
    found = {e["key"]: e for e in result.of_kind("producer")}
    assert key in found, sorted(found)
    return found[key]


def line_of(text: str) -> int:
    lines = (SCRIPTS / "faults.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if text in line)


def test_log_of_zero_is_found_at_its_line_with_the_zero_in_its_input():
    found = producer(replay(FAULTS, 1, "--fault", "log"), "forward")
    assert found["op"] == "aten.log" and found["call"] == "torch.log"
    assert found["site"]["line"] == line_of("return -(y * torch.log(p)")
    assert found["inputs"][0]["zeros"] >= 1


def test_a_nan_gradient_names_its_node_and_the_forward_line():
    found = producer(replay(FAULTS, 0, "--fault", "sqrt"), "backward")
    assert found["node"] == "SqrtBackward0"
    assert found["forward_line"] == line_of("else torch.sqrt(sq) + 1e-8")
    assert found["forward_inputs"][0]["zeros"] > 0


def test_an_update_that_breaks_finite_weights_is_its_own_phase():
    result = replay(FAULTS, 0, "--fault", "half_adam")
    assert result.first_event["phase"] == "optimizer"
    assert producer(result, "update")["op"].startswith("aten.")


def test_nan_that_comes_from_outside_torch_is_found_where_it_entered():
    result = replay(FAULTS, 3, "--fault", "nan_input", data=True)
    found = producer(result, "data")
    # The NaN was written into the dataset by an assignment, not made by an op.
    assert found["pass"] == "entered"
    assert found["site"]["line"] == line_of('x[100, 3] = float("nan")')


def test_a_division_by_a_zero_norm_is_caught_at_its_line():
    found = producer(replay(FAULTS, 0, "--fault", "div", data=True), "forward")
    assert found["op"] == "aten.div"
    assert found["site"]["line"] == line_of("e / e.norm(dim=1, keepdim=True)")


def test_masks_of_minus_infinity_are_not_faults():
    result = replay(str(SCRIPTS / "masked_attention.py"), 2)
    assert result.first_event is None
    assert result.of_kind("producer") == []


def test_a_softmax_over_a_fully_masked_row_names_where_the_mask_came_from():
    found = producer(replay(FAULTS, 0, "--fault", "masked_softmax"), "forward")
    assert found["op"] == "aten._softmax"
    assert found["masked_from"]["op"] == "aten.masked_fill"

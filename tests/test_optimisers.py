import math

import pytest
import torch

from pixray.optimisers import OPTIMISERS
from pixray.settings import SettingsError, build_settings


def _step(grad: torch.Tensor, lr: float) -> torch.Tensor:
    param = torch.nn.Parameter(torch.zeros_like(grad))
    optimiser = OPTIMISERS.lookup("NGD")([param], lr=lr)
    param.grad = grad.clone()
    optimiser.step()
    return param.detach()


def test_ngd_steps_against_the_gradient_with_rms_step_lr():
    grad = torch.tensor([[3.0, -4.0], [0.0, 1e-6]])
    moved = _step(grad, lr=0.1)
    assert torch.isclose(moved.square().mean().sqrt(), torch.tensor(0.1), rtol=1e-5)
    # Same direction as -grad: proportions kept (Adam would move all four by about lr).
    assert torch.allclose(moved, -grad * 0.1 * math.sqrt(4) / grad.norm())


def test_ngd_step_does_not_depend_on_the_loss_scale_and_zero_gradient_stays():
    grad = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(_step(grad, 0.05), _step(grad * 1e4, 0.05))
    assert torch.equal(_step(torch.zeros(3), 0.1), torch.zeros(3))


def test_ngd_is_a_setting_choice_and_bad_values_are_refused():
    assert build_settings({"optimiser": "NGD"}).optimiser == "NGD"
    with pytest.raises(SettingsError, match=r"one of Adam.*NGD"):
        build_settings({"optimiser": "SGD"})
    with pytest.raises(ValueError, match="learning rate must be positive"):
        OPTIMISERS.lookup("NGD")([torch.nn.Parameter(torch.zeros(1))], lr=0)


def test_engine_runs_with_ngd(small_settings, tiny_perceptor):
    import pixray

    steps = list(pixray.generate(small_settings, perceptors=[tiny_perceptor], iterations=3, optimiser="NGD"))
    assert steps[-1].is_final and torch.isfinite(steps[-1].losses["total"])
    assert not torch.equal(steps[0].image, steps[-1].image)


def test_ngd_gives_the_whole_step_to_parameters_that_can_move_inside_their_bounds():
    param = torch.nn.Parameter(torch.tensor([0.0, 0.5, 1.0]))
    optimiser = OPTIMISERS.lookup("NGD")([{"params": [param], "bounds": (0.0, 1.0)}], lr=0.1)
    param.grad = torch.tensor([5.0, 0.1, -5.0])  # the first and last push out of [0, 1]
    optimiser.step()
    # All of the step (rms 0.1 over three elements) goes to the middle one.
    assert torch.allclose(param.detach(), torch.tensor([0.0, 0.5 - 0.1 * math.sqrt(3), 1.0]))
    param.grad = torch.tensor([-5.0, 0.0, 5.0])  # pointing inwards: followed as usual
    optimiser.step()
    assert param[0] > 0 and param[2] < 1


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



def _steps(name: str, param: torch.Tensor, grads: list[torch.Tensor], lr: float) -> torch.Tensor:
    param = torch.nn.Parameter(param.clone())
    optimiser = OPTIMISERS.lookup(name)([param], lr=lr)
    for grad in grads:
        param.grad = grad.clone()
        optimiser.step()
    return param.detach()


def test_diffgrad_is_pixrays_adam_with_momentum_scaled_by_how_much_the_gradient_changed():
    """DiffGrad (Dubey et al., 2019), as Pixray's torch-optimizer steps it: Adam's moments, the first
    one scaled by sigmoid(|previous gradient - gradient|) (0 before the first), step size
    lr * sqrt(1 - beta2^t) / (1 - beta1^t) over sqrt(v) + eps."""
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    grads = [torch.randn(4, 5, generator=generator, dtype=torch.float64) for _ in range(4)]
    lr, (beta1, beta2), eps = 0.1, (0.9, 0.999), 1e-8
    expected, m, v, previous = start.clone(), torch.zeros_like(start), torch.zeros_like(start), None
    for t, grad in enumerate(grads, 1):
        m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad**2
        change = grad.abs() if previous is None else (previous - grad).abs()
        previous = grad
        step = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        expected -= step * m * torch.sigmoid(change) / (v.sqrt() + eps)
    assert torch.allclose(_steps("DiffGrad", start, grads, lr), expected, rtol=1e-9, atol=1e-12)


def test_adamp_is_adam_until_a_step_would_only_grow_a_weights_norm():
    """AdamP (Heo et al., 2021): Adam's step (to within where eps is added: this package adds it before
    the bias correction), except where the gradient is nearly perpendicular to a weight (a
    scale-invariant one), whose step it projects off the weight's direction."""
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(6, 8, generator=generator, dtype=torch.float64)
    along = [weight * s for s in (0.5, 1.0, 2.0)]  # gradients parallel to the weight: no projection
    assert torch.allclose(_steps("AdamP", weight, along, 0.05), _steps("Adam", weight, along, 0.05),
                          rtol=0, atol=1e-5)  # steps of 0.05 each
    across = torch.randn(6, 8, generator=generator, dtype=torch.float64)
    across -= (across * weight).sum() / weight.square().sum() * weight  # perpendicular to the weight
    adam, adamp = _steps("Adam", weight, [across], 0.05), _steps("AdamP", weight, [across], 0.05)
    moved = adamp - weight
    assert (adamp - adam).abs().max() > 1e-3
    assert abs(float((moved * weight).sum())) < 1e-9 * float(moved.norm() * weight.norm())


@pytest.mark.parametrize("name", ["DiffGrad", "AdamP"])
def test_pixrays_diffgrad_and_adamp_are_choices_and_runs_use_them(name, small_settings, tiny_perceptor):
    import pixray

    steps = list(pixray.generate(small_settings, perceptors=[tiny_perceptor], iterations=3, optimiser=name))
    assert steps[-1].is_final and torch.isfinite(steps[-1].losses["total"])
    assert not torch.equal(steps[0].image, steps[-1].image)

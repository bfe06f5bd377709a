"""The pure-torch rasteriser: exact polygon coverage, antialiased strokes, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixray.raster import cubic_polylines, polygon_coverage, render_strokes
from pixray.raster.polygons import box_areas


def _shoelace(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


@pytest.mark.parametrize("polygon", [
    [(2.3, 1.7), (9.6, 1.7), (9.6, 7.25), (2.3, 7.25)],  # an axis-aligned square off the pixel grid
    [(5.0, 0.5), (1.0, 3.0), (1.0, 7.0), (5.0, 9.5), (9.0, 7.0), (9.0, 3.0)],  # a hexagon
    [(1.2, 1.0), (10.5, 1.0), (10.5, 8.5), (6.0, 4.0), (1.2, 8.5)],  # not convex (a notch)
    [(-3.0, -2.0), (20.0, -2.0), (20.0, 5.5), (-3.0, 5.5)],  # partly beyond the canvas: clipped
])
def test_polygon_coverage_is_exact(polygon):
    points = np.asarray(polygon)
    table = polygon_coverage([points], [0], 12, 10)
    clipped = np.clip(points, [0, 0], [12, 10])
    expected = _shoelace(clipped) if points.min() < 0 else _shoelace(points)
    assert table.coverage().sum().item() == pytest.approx(expected, rel=1e-6)
    assert table.weight.min() >= 0 and table.weight.max() <= 1 + 1e-6


def test_box_areas_match_a_fine_point_count():
    rng = np.random.default_rng(0)
    triangle = rng.uniform(0, 4, size=(1, 3, 2))
    px, py = np.meshgrid(np.arange(4.0), np.arange(4.0))
    areas = box_areas(triangle, px.reshape(1, -1), py.reshape(1, -1)).reshape(4, 4)
    s = (np.arange(200) + 0.5) / 200
    a, b, c = triangle[0]

    def inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        d1 = (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0])
        d2 = (c[0] - b[0]) * (y - b[1]) - (c[1] - b[1]) * (x - b[0])
        d3 = (a[0] - c[0]) * (y - c[1]) - (a[1] - c[1]) * (x - c[0])
        return ((d1 >= 0) & (d2 >= 0) & (d3 >= 0)) | ((d1 <= 0) & (d2 <= 0) & (d3 <= 0))

    for i in range(4):
        for j in range(4):
            x, y = np.meshgrid(j + s, i + s)
            assert areas[i, j] == pytest.approx(inside(x, y).mean(), abs=5e-3)


def test_coverage_table_renders_a_weighted_sum_differentiably():
    table = polygon_coverage([np.array([(0, 0), (1.5, 0), (1.5, 1), (0, 1)]),
                              np.array([(1.5, 0), (3, 0), (3, 1), (1.5, 1)])], [0, 1], 3, 1)
    values = torch.tensor([[0.0, 1.0]], requires_grad=True)
    image = table.render(values)
    assert torch.allclose(image, torch.tensor([[[0.0, 0.5, 1.0]]]))
    image.sum().backward()
    assert torch.allclose(values.grad, torch.tensor([[1.5, 1.5]]))


@pytest.mark.parametrize("start, end", [((10.3, 20.2), (50.1, 20.2)), ((8.0, 6.0), (52.5, 41.0))])
@pytest.mark.parametrize("radius", [1.5, 4.0])
def test_a_thick_straight_stroke_covers_its_analytic_area(start, end, radius):
    line = torch.tensor([[start, end]])
    image = render_strokes(line, torch.tensor([radius]), torch.tensor([[1.0, 1.0, 1.0, 1.0]]),
                           torch.zeros(3, 48, 64))
    length = math.dist(start, end)
    expected = 2 * radius * length + math.pi * radius ** 2  # round caps
    assert image[0].sum().item() == pytest.approx(expected, rel=5e-3)


def _hard_supersampled(polylines: torch.Tensor, radii: torch.Tensor, colors: torch.Tensor,
                       background: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """Strokes drawn with a hard inside test at factor x factor samples per pixel, averaged."""
    _, height, width = background.shape
    ys, xs = torch.meshgrid((torch.arange(height * factor) + 0.5) / factor,
                            (torch.arange(width * factor) + 0.5) / factor, indexing="ij")
    q = torch.stack([xs, ys], -1).reshape(-1, 2)
    out = background.repeat_interleave(factor, 1).repeat_interleave(factor, 2).reshape(3, -1)
    for line, radius, color in zip(polylines, radii, colors, strict=True):
        a, ab = line[:-1], line[1:] - line[:-1]
        offset = q[:, None] - a[None]
        t = ((offset * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0, 1)
        inside = ((offset - t[..., None] * ab).norm(dim=-1).amin(1) <= radius).float() * color[3]
        out = out * (1 - inside) + color[:3, None] * inside
    return out.reshape(3, height, factor, width, factor).mean((2, 4))


def test_random_strokes_match_a_16x_supersampled_hard_rasteriser():
    generator = torch.Generator().manual_seed(0)
    width, height, count = 64, 48, 24
    controls = torch.rand(count, 7, 2, generator=generator) * torch.tensor([width, height])
    polylines = cubic_polylines(controls, 8)
    radii = torch.rand(count, generator=generator) * 3 + 0.5
    colors = torch.rand(count, 4, generator=generator)
    background = torch.rand(3, 1, 1, generator=generator).expand(3, height, width)
    image = render_strokes(polylines, radii, colors, background)
    reference = _hard_supersampled(polylines, radii, colors, background)
    assert (image - reference).abs().mean() < 0.01


def test_gradients_reach_points_widths_colours_and_background():
    generator = torch.Generator().manual_seed(1)
    width, height = 12, 10
    controls = (torch.rand(2, 4, 2, generator=generator, dtype=torch.float64)
                * torch.tensor([width, height])).requires_grad_()
    radii = (torch.rand(2, generator=generator, dtype=torch.float64) * 2 + 0.7).requires_grad_()
    colors = torch.rand(2, 4, generator=generator, dtype=torch.float64).requires_grad_()
    background = torch.rand(3, height, width, generator=generator, dtype=torch.float64)

    def render(c: torch.Tensor, r: torch.Tensor, k: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return render_strokes(cubic_polylines(c, 4), r, k, b, tile=8)

    assert torch.autograd.gradcheck(render, (controls, radii, colors, background), eps=1e-6, atol=1e-4)
    # The background's gradient is what shows through the strokes: checked on a 4x4 scene.
    small = background[:, :4, :4].clone().requires_grad_()
    scene = (controls.detach() / 3, radii.detach() / 3, colors.detach(), small)
    assert torch.autograd.gradcheck(render, scene, eps=1e-6, atol=1e-4)


def test_optimising_moves_a_stroke_onto_a_target():
    background = torch.ones(3, 32, 48)
    black = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    target_line = torch.tensor([[[10.0, 12.0], [20.0, 8.0], [30.0, 20.0], [38.0, 18.0]]])
    target = render_strokes(cubic_polylines(target_line, 8), torch.tensor([2.5]), black, background)
    controls = (target_line + torch.tensor([2.0, 2.5])).requires_grad_()
    optimiser = torch.optim.Adam([controls], lr=0.1)
    for _ in range(150):
        image = render_strokes(cubic_polylines(controls, 8), torch.tensor([2.5]), black, background)
        loss = (image - target).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    # Every point of the curve lies on the target curve (its parametrisation may slide along it).
    drawn, wanted = cubic_polylines(controls.detach(), 16)[0], cubic_polylines(target_line, 256)[0]
    assert torch.cdist(drawn, wanted).amin(1).max() < 0.5  # from 3.2 pixels off


def test_strokes_beyond_the_canvas_and_empty_scenes_leave_the_background():
    background = torch.rand(3, 16, 16)
    far = torch.tensor([[[-50.0, -50.0], [-40.0, -45.0]]])
    assert torch.equal(render_strokes(far, torch.tensor([2.0]), torch.ones(1, 4), background), background)
    assert torch.equal(render_strokes(torch.zeros(0, 2, 2), torch.zeros(0), torch.zeros(0, 4), background),
                       background)


def test_cubic_polylines_pass_through_the_ends_and_join_segments():
    controls = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [3.0, 2.0], [4.0, 0.0], [5.0, -2.0], [7.0, -2.0],
                              [8.0, 0.0]]])
    line = cubic_polylines(controls, 4)
    assert line.shape == (1, 9, 2)
    assert torch.equal(line[0, 0], controls[0, 0]) and torch.equal(line[0, 4], controls[0, 3])
    assert torch.equal(line[0, -1], controls[0, -1])
    with pytest.raises(ValueError, match="3K\\+1"):
        cubic_polylines(torch.zeros(1, 5, 2), 4)

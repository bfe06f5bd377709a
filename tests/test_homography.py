import pytest
import torch
from kornia.geometry.linalg import transform_points
from kornia.geometry.transform import get_perspective_transform

from pixray.homography import inverse, quad_to_quad, square_to_quad, transformed

UNIT_SQUARE = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)


def _quads(n: int, seed: int) -> torch.Tensor:
    """(n,4,2) convex quadrilaterals, clockwise from the top left in y-down coordinates: a rectangle
    of random size and place with each corner moved by up to a third of its side."""
    generator = torch.Generator().manual_seed(seed)
    size = 1 + 9 * torch.rand(n, 1, 2, generator=generator, dtype=torch.float64)
    place = 20 * torch.rand(n, 1, 2, generator=generator, dtype=torch.float64) - 10
    moved = (torch.rand(n, 4, 2, generator=generator, dtype=torch.float64) - 0.5) * 2 / 3
    return place + (UNIT_SQUARE + moved) * size


def _scaled(homographies: torch.Tensor) -> torch.Tensor:
    return homographies / homographies[..., 2:, 2:]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_square_to_quad_is_kornias_perspective_from_the_unit_square(seed):
    quads = _quads(64, seed)
    ours = square_to_quad(quads)
    kornias = get_perspective_transform(UNIT_SQUARE.expand_as(quads), quads)
    assert torch.allclose(_scaled(ours), kornias, rtol=1e-9, atol=1e-9)
    assert torch.allclose(transformed(ours, UNIT_SQUARE.expand_as(quads)), quads, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_quad_to_quad_is_kornias_perspective_transform(seed):
    sources, targets = _quads(64, seed), _quads(64, seed + 10)
    ours = quad_to_quad(sources, targets)
    kornias = get_perspective_transform(sources, targets)
    assert torch.allclose(_scaled(ours), kornias, rtol=1e-9, atol=1e-9)
    assert torch.allclose(transformed(ours, sources), targets, atol=1e-9)
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(64, 7, 2, generator=generator, dtype=torch.float64) * 20 - 10
    assert torch.allclose(transformed(ours, points), transform_points(kornias, points), atol=1e-9)


def test_inverse_undoes_a_homography_up_to_scale():
    homographies = square_to_quad(_quads(16, 3))
    product = homographies @ inverse(homographies)
    identity = torch.eye(3, dtype=torch.float64).expand_as(product)
    assert torch.allclose(product / product[..., :1, :1], identity, atol=1e-12)


def test_a_parallelogram_maps_affinely():
    parallelogram = torch.tensor([[[0.0, 0.0], [4.0, 1.0], [5.0, 3.0], [1.0, 2.0]]], dtype=torch.float64)
    homography = square_to_quad(parallelogram)
    assert torch.equal(homography[0, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


def test_float32_matches_kornia_closely():
    quads = _quads(32, 4).float()
    ours = square_to_quad(quads)
    kornias = get_perspective_transform(UNIT_SQUARE.float().expand_as(quads), quads)
    assert torch.allclose(_scaled(ours), kornias, rtol=1e-5, atol=1e-5)

from functools import partial

import numpy as np
import pytest
import torch

from pixray.demo.evaluate import contrasted, demo_prompt, largest_region, nearest_colours, scene_statistics
from pixray.demo.train import build_model, train
from pixray.demo.world import COLOURS, SHAPES, Scene, all_scenes, draw_scene, random_scenes, shape_polygon
from pixray.prompts import parse_prompts


def test_vocabulary():
    scenes = all_scenes()
    assert len(scenes) == 224 == len({s.caption for s in scenes})
    assert all(s.colour != s.background for s in scenes)
    assert scenes[0].caption == "a red circle on a green background"


def test_scenes_are_deterministic_and_varied():
    a_images, a_labels = random_scenes(16, seed=3)
    b_images, b_labels = random_scenes(16, seed=3)
    c_images, _ = random_scenes(16, seed=4)
    assert np.array_equal(a_images, b_images) and np.array_equal(a_labels, b_labels)
    assert not np.array_equal(a_images, c_images)
    assert a_images.shape == (16, 64, 64, 3) and a_images.dtype == np.uint8


@pytest.mark.parametrize("shape", SHAPES)
def test_drawn_scene_pixel_statistics(shape):
    scene = Scene("red", shape, "blue")
    image = np.asarray(draw_scene(scene, np.random.default_rng(0), size=64))
    labels = nearest_colours(image)
    names = list(COLOURS)
    assert {names[i] for i in np.unique(labels)} <= {"red", "blue", "purple"}  # edges blend
    stats = scene_statistics(image, "red", "blue")
    assert stats.foreground_region > 0.05 and stats.foreground_region >= 0.9 * stats.foreground


def test_shape_polygon_rejects_unknown_shapes():
    with pytest.raises(ValueError, match="valid: circle, square, triangle, cross"):
        shape_polygon("star", 0, 0, 1)


def test_contrasted_prompt_pushes_away_from_the_other_shapes():
    prompts = parse_prompts(contrasted("a red circle on a blue background", weight=0.2))
    assert [(p.text, p.weight) for p in prompts] == [
        ("a red circle on a blue background", 1.0),
        ("a red square on a blue background", -0.2),
        ("a red triangle on a blue background", -0.2),
        ("a red cross on a blue background", -0.2),
    ]
    with pytest.raises(ValueError, match=r"not a shapes-world caption.*shapes circle, square"):
        contrasted("a red dog on a blue background")


def test_demo_prompt_per_drawer():
    caption = "a red circle on a blue background"
    assert demo_prompt("pixel", caption) == contrasted(caption)
    # fft reads worse with negatives (docs/shapes-world-experiments.md)
    assert demo_prompt("fft", caption) == caption
    assert demo_prompt("pixel", caption, contrast=0) == caption
    assert demo_prompt("fft", caption, contrast=0.1) == contrasted(caption, 0.1)


def test_largest_region():
    mask = np.zeros((6, 6), dtype=bool)
    mask[0:2, 0:2] = True  # 4 pixels
    mask[3:6, 3:6] = True  # 9 pixels
    mask[0, 5] = True
    assert largest_region(mask) == 9
    assert largest_region(np.zeros((3, 3), dtype=bool)) == 0


def test_training_is_repeatable_from_its_seed():
    """Two steps of the guides' recipe (adversarial views included) give identical weights twice."""
    run = partial(train, "resnet", seed=5, steps=2, batch=4, pool=8, noise=0.1, radius=0.5, attack_steps=2)
    first, second = run().state_dict(), run().state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    torch.manual_seed(5)  # train() builds its model right after seeding
    initial = build_model("resnet").state_dict()
    assert not torch.equal(first["visual.conv1.weight"], initial["visual.conv1.weight"])

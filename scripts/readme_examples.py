"""Make the README's example images (docs/examples/) offline with the shapes-world guides.

    .venv/bin/python scripts/readme_examples.py

Each example is one ``pixray.run`` with the demo's settings (pixray/demo/shapes.yaml) and the changes
printed next to it; the strip puts the pictures side by side with their labels, the tiler's shown
2x2 so its seams can be judged, and the GIF is the first example's steps/output.gif.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

import pixray

OUT = Path(__file__).resolve().parent.parent / "docs" / "examples"
PROMPT = "a red circle on a blue background"
EXAMPLES = [
    ("plain", {}),
    ("lookup: 3 colours", {"filters": "lookup", "palette": "[black, red, blue]", "init_noise": "pixels"}),
    ("symmetry:10", {"prompts": "a red triangle on a blue background",
                     "custom_loss": "smoothness,edge,symmetry:10"}),
    ("tiler (2x2)", {"filters": "tiler", "custom_loss": "smoothness"}),
    ("fast_pixel, saturation", {"drawer": "fast_pixel", "custom_loss": "smoothness,edge,saturation:5"}),
]
SCALE = 3  # each 64x64 picture shown at 192x192, pixels kept sharp


def main() -> None:
    base = pixray.read_settings_file(Path(pixray.__file__).parent / "demo" / "shapes.yaml")
    OUT.mkdir(parents=True, exist_ok=True)
    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, changes) in enumerate(EXAMPLES):
            settings = {**base, "drawer": "pixel", "prompts": PROMPT, "seed": 3, "gif": i == 0,
                        "outdir": f"{tmp}/{i}", **changes}
            print(label, changes)
            image = pixray.run(**settings).convert("RGB")
            if label.startswith("tiler"):
                tiled = Image.new("RGB", (image.width * 2, image.height * 2))
                for x in (0, image.width):
                    for y in (0, image.height):
                        tiled.paste(image, (x, y))
                tiles.append((label, tiled.resize((64 * SCALE, 64 * SCALE), Image.Resampling.LANCZOS)))
            else:
                tiles.append((label, image.resize((64 * SCALE, 64 * SCALE), Image.Resampling.NEAREST)))
            if i == 0:
                shutil.copyfile(Path(tmp) / "0" / "steps" / "output.gif", OUT / "forming.gif")
    width = sum(tile.width for _, tile in tiles) + 8 * (len(tiles) + 1)
    strip = Image.new("RGB", (width, 64 * SCALE + 32), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    x = 8
    for label, tile in tiles:
        strip.paste(tile, (x, 8))
        draw.text((x, 64 * SCALE + 12), label, fill=(0, 0, 0))
        x += tile.width + 8
    strip.save(OUT / "looks.png", optimize=True)
    print(OUT / "looks.png", OUT / "forming.gif")


if __name__ == "__main__":
    main()

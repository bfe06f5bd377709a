"""Where weight files live and what each downloadable file is (official URLs, sha256, size).

Loading never fetches: a missing file raises :class:`MissingWeightsError` naming the file, the
directory searched and the command that fetches it (``python -m pixray.weights download``, see
:mod:`pixray.weights.download`); the programs (the commands, the web page, ``pixray.run``, the Cog
server's setup) fetch what that error names (:func:`pixray.model_cache.fetching_missing`). A present
file is checked against the manifest before use; a verified file leaves a ``.NAME.verified`` stamp
(size, mtime, digest) so its hash is recomputed only when the file changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, MissingWeightsError
from ..registry import Registry

WEIGHTS_ENV = "PIXRAY_WEIGHTS_DIR"
# Small weight files that ship inside the package (the shapes-world CLIPs).
PACKAGED_WEIGHTS = Path(__file__).parent.parent / "demo" / "weights"


@dataclass(frozen=True)
class WeightFile:
    """One downloadable weight file: URLs tried in order (official first, then mirrors). ``sha256``
    is the digest where the publisher states it, or the leading digits it states (torchvision
    names its files with the first 8)."""

    filename: str
    urls: tuple[str, ...]
    sha256: str | None = None
    size: int | None = None
    note: str = ""


def _openai_clip(digest: str, filename: str) -> WeightFile:
    # OpenAI publishes each checkpoint under its own sha256.
    url = f"https://openaipublic.azureedge.net/clip/models/{digest}/{filename}"
    return WeightFile(filename, (url,), digest)


_HEIBOX = "https://heibox.uni-heidelberg.de/d/{share}/files/?p=%2F{path}&dl=1"
_HEIBOX_NOTE = "official (CompVis, Heidelberg University)"
_GITHUB_MIRROR = "https://github.com/Eleiber/VQGAN-Mirrors/releases/download/0.0.1/{file}"
_WIKIART_NOTE = ("Pixray's hosts mirror.io.community and eaidata.bmk.sh no longer serve these; "
                 "the GitHub release mirror is used")


def open_clip_filename(architecture: str, tag: str) -> str:
    """The weight file of open_clip's ``architecture`` trained as ``tag`` (the perceptor catalog's
    ``ARCHITECTURE:TAG`` models)."""
    return f"{architecture}-{tag}.pt"


def _open_clip_hf(architecture: str, tag: str, repository: str) -> WeightFile:
    url = f"https://huggingface.co/{repository}/resolve/main/open_clip_pytorch_model.bin"
    return WeightFile(open_clip_filename(architecture, tag), (url,),
                      note="open_clip's Hugging Face repository")


def _open_clip_release(architecture: str, tag: str, file: str) -> WeightFile:
    url = f"https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/{file}"
    digits = file.rsplit("-", 1)[1].removesuffix(".pt")  # the sha256's first 8, in the file's name
    return WeightFile(open_clip_filename(architecture, tag), (url,), digits,
                      note="open_clip's GitHub release")


def _vdiff(model: str, digest: str) -> WeightFile:
    """A v-diffusion checkpoint: Pixray's host (the-eye.eu), then the bucket it moved from."""
    urls = (f"https://the-eye.eu/public/AI/models/v-diffusion/{model}.pth",
            f"https://v-diffusion.s3.us-west-2.amazonaws.com/{model}.pth")
    return WeightFile(f"vdiff_{model}.pth", urls, digest, note="Katherine Crowson's v-diffusion model")


def _heibox_pair(model: str, share: str, config: str, ckpt: str) -> list[WeightFile]:
    """A VQGAN config + checkpoint pair on CompVis' Heidelberg share."""
    paths = {"yaml": config, "ckpt": ckpt}
    urls = {ext: (_HEIBOX.format(share=share, path=path),) for ext, path in paths.items()}
    return _mirror_pair(model, urls, _HEIBOX_NOTE)


def _mirror_pair(model: str, urls: dict[str, tuple[str, ...]], note: str) -> list[WeightFile]:
    """A VQGAN config + checkpoint pair: ``urls`` by extension ("yaml", "ckpt")."""
    return [WeightFile(f"vqgan_{model}.{ext}", urls[ext], note=note) for ext in ("yaml", "ckpt")]


# sha256 is given where the publisher states it (OpenAI); VQGAN hosts publish none, so those
# files are checked for completeness only (their size is not published either).
_FILES = [
    _openai_clip("afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "RN50.pt"),
    _openai_clip("8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599", "RN101.pt"),
    _openai_clip("7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd", "RN50x4.pt"),
    _openai_clip("52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa", "RN50x16.pt"),
    _openai_clip("be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c", "RN50x64.pt"),
    _openai_clip("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "ViT-B-32.pt"),
    _openai_clip("5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "ViT-B-16.pt"),
    _openai_clip("b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "ViT-L-14.pt"),
    _openai_clip("3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", "ViT-L-14-336px.pt"),
    # open_clip's LAION and DataComp CLIPs (the perceptor catalog's ARCHITECTURE:TAG names): the file
    # open_clip downloads from each Hugging Face repository (published without a checksum here), or
    # from open_clip's GitHub release, whose file names end in their sha256's first 8 hex digits.
    _open_clip_hf("ViT-B-32", "laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
    _open_clip_release("ViT-B-32", "laion400m_e32", "vit_b_32-quickgelu-laion400m_e32-46683a32.pt"),
    _open_clip_hf("ViT-B-32", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K"),
    _open_clip_hf("ViT-B-16", "laion2b_s34b_b88k", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K"),
    _open_clip_release("ViT-B-16", "laion400m_e32", "vit_b_16-laion400m_e32-55e67d44.pt"),
    _open_clip_hf("ViT-B-16", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K"),
    _open_clip_hf("ViT-L-14", "laion2b_s32b_b82k", "laion/CLIP-ViT-L-14-laion2B-s32B-b82K"),
    _open_clip_hf("ViT-L-14", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K"),
    _open_clip_hf("ViT-H-14", "laion2b_s32b_b79k", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"),
    # torch.hub's naming: the file name ends in the first 8 hex digits of its sha256.
    WeightFile("vgg16-397923af.pth", ("https://download.pytorch.org/models/vgg16-397923af.pth",), "397923af",
               note="torchvision's ImageNet VGG16 (the style loss uses its convolutions)"),
    # Katherine Crowson's AVA rating head for ViT-B/16 (published without a checksum); Pixray's host first.
    WeightFile("ava_vit_b_16_linear.pth", ("https://dazhi.art/f/ava_vit_b_16_linear.pth",
                                           "https://models.nmb.ai/majesty/ava_vit_b_16_linear.pth"),
               note="Pixray's host, then the mirror Majesty Diffusion uses"),
    # Real-ESRGAN's release (no checksum is published), the URL Pixray's super_resolution drawer uses.
    WeightFile("RealESRGAN_x4plus.pth",
               ("https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",),
               note="Real-ESRGAN x4plus (Xintao Wang et al.), for the super_resolution drawer"),
    # Katherine Crowson's v-diffusion models (the vdiff drawer), with the SHA-256 her v-diffusion-pytorch
    # README publishes: Pixray's host first, then the publisher's earlier S3 bucket.
    *[_vdiff(name, digest) for name, digest in (
        ("yfcc_2", "69ad4e534feaaebfd4ccefbf03853d5834231ae1b5402b9d2c3e2b331de27907"),
        ("yfcc_1", "a1c0f6baaf89cb4c461f691c2505e451ff1f9524744ce15332b7987cc6e3f0c8"),
        ("cc12m_1", "63946d1f6a1cb54b823df818c305d90a9c26611e594b5f208795864d5efe0d1f"),
        ("cc12m_1_cfg", "4fc95ee1b3205a3f7422a07746383776e1dbc367eaf06a5b658ad351e77b7bda"),
        ("danbooru_128", "1728940d3531504246dbdc75748205fd8a24238a17e90feb82a64d7c8078c449"),
        ("imagenet_128", "cac117cd0ed80390b2ae7f3d48bf226fd8ee0799d3262c13439517da7c214a67"),
        ("wikiart_128", "b3ca8d0cf8bd47dcbf92863d0ab6e90e5be3999ab176b294c093431abdce19c1"),
        ("wikiart_256", "da45c38aa31cd0d2680d29a3aaf2f50537a4146d80bba2ca3e7a18d227d9b627"))],
    *_heibox_pair("imagenet_f16_1024", "8088892a516d4e3baf92", "configs%2Fmodel.yaml", "ckpts%2Flast.ckpt"),
    *_heibox_pair("imagenet_f16_16384", "a7530b09fed84f80a887", "configs%2Fmodel.yaml", "ckpts%2Flast.ckpt"),
    *_heibox_pair("openimages_f16_8192", "2e5662443a6b4307b470", "configs%2Fmodel.yaml", "ckpts%2Flast.ckpt"),
    *_heibox_pair("sflckr", "73487ab6e5314cb5adba", "configs%2F2020-11-09T13-31-51-project.yaml",
                  "checkpoints%2Flast.ckpt"),
    *_mirror_pair("coco", {"yaml": ("https://dl.nmkd.de/ai/clip/coco/coco.yaml",),
                           "ckpt": ("https://dl.nmkd.de/ai/clip/coco/coco.ckpt",)},
                  "community mirror (the original upload was never public)"),
    *_mirror_pair("faceshq", {
        "yaml": ("https://drive.google.com/uc?export=download&id=1fHwGx_hnBtC8nsq7hesJvs-Klv-P0gzT",),
        "ckpt": ("https://app.koofr.net/content/links/a04deec9-0c59-4673-8b37-3d696fe63a5d/files/get/"
                 "last.ckpt?path=%2F2020-11-13T21-41-45_faceshq_transformer%2Fcheckpoints%2Flast.ckpt",)},
        "community mirrors used by Pixray"),
    *_mirror_pair("wikiart_1024", {
        "yaml": (_GITHUB_MIRROR.format(file="wikiart_1024.yaml"),),
        "ckpt": (_GITHUB_MIRROR.format(file="wikiart_1024.ckpt"),)}, _WIKIART_NOTE),
    *_mirror_pair("wikiart_16384", {
        "yaml": (_GITHUB_MIRROR.format(file="wikiart_16384.yaml"),),
        "ckpt": (_GITHUB_MIRROR.format(file="wikiart_16384.ckpt"),)}, _WIKIART_NOTE),
]

MANIFEST: Registry[WeightFile] = Registry("weight file", {f.filename: f for f in _FILES})


def weights_dir(setting: str | Path | None = None) -> Path:
    """The weights directory: the ``weights_dir`` setting, else ``$PIXRAY_WEIGHTS_DIR``, else ./weights
    where that folder exists (a checkout, the Cog image), else pixray's folder in the user's cache
    (``$XDG_CACHE_HOME/pixray/weights``, by default ``~/.cache/pixray/weights``), which runs started in
    any folder share: the commands fetch what a run misses, and a gigabyte per folder would pile up.
    ``~`` is expanded."""
    if setting or os.environ.get(WEIGHTS_ENV):
        return Path(setting or os.environ[WEIGHTS_ENV]).expanduser()
    if Path("weights").is_dir():
        return Path("weights")
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "pixray" / "weights"


def fetch_command(name: str) -> str:
    """The shell command that downloads ``name`` (a file, CLIP or VQGAN model) into the weights directory."""
    return f"python -m pixray.weights download {name}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _stat_key(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size} {stat.st_mtime_ns}"


def verify(path: Path, entry: WeightFile) -> None:
    """Raise :class:`CheckpointError` unless ``path`` has the entry's size and sha256 (where known)."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise CheckpointError(f"weight file {str(path)!r} is {size} bytes, expected {entry.size}: it is "
                              "incomplete or not the published file; delete it and fetch it again with "
                              f"`{fetch_command(entry.filename)} --dir {path.parent}`")
    if entry.sha256 is None:
        return
    stamp = stamp_path(path)
    expected = f"{_stat_key(path)} {entry.sha256}"
    if stamp.is_file() and stamp.read_text() == expected:
        return
    actual = sha256_of(path)
    if not actual.startswith(entry.sha256):  # some publishers give a prefix (torchvision: 8 digits)
        raise CheckpointError(f"weight file {str(path)!r} fails its checksum (sha256 {actual}, expected "
                              f"{entry.sha256}); it is not used. Delete it and fetch it again with "
                              f"`{fetch_command(entry.filename)} --dir {path.parent}`")
    with contextlib.suppress(OSError):  # a read-only weights directory just recomputes next time
        stamp.write_text(expected)


def find_weight_file(filename: str, directory: Path) -> Path:
    """The path of ``filename`` inside ``directory``; raises :class:`MissingWeightsError` if absent."""
    path = directory / filename
    entry = MANIFEST.get(filename)
    if path.is_file():
        if entry is not None:
            verify(path, entry)
        return path
    if directory == PACKAGED_WEIGHTS:
        source = "it ships with pixray (reinstall, or rebuild it with python -m pixray.demo.train)"
    elif entry:
        source = (f"fetch it with `{fetch_command(filename)} --dir {directory}` "
                  f"(or download {entry.urls[0]} into that directory)")
    else:
        source = "it is not in the download manifest; copy it into that directory"
    raise MissingWeightsError(
        f"weight file {filename!r} not found in {str(directory.resolve())!r}: {source}, or point the "
        f"weights_dir setting or ${WEIGHTS_ENV} at a directory holding it", [filename])

"""The Gradio page of ``pixray ui``: the form (generated from the settings tree), the image as it
forms with its progress bar, the downloads, and the gallery; every button's work is done by
:class:`~pixray.ui.page.Page`.

The page asks the browser for nothing beyond this server (system fonts, no analytics), so it works
offline.
"""

# No `from __future__ import annotations`: Gradio finds gr.Request and gr.SelectData parameters by
# their annotations, which must be the classes themselves.

import html
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from ..init_images import as_shown
from ..options import SettingsError
from .form import ADVANCED, FIELDS, Field, fields, form_from_settings, reference
from .page import Page, View, one_line

CSS = """
.pixray-error { color: var(--error-text-color, #b91c1c); font-size: var(--text-sm); }
#pixray-status progress { width: 100%; height: 0.8em; }
/* The image stays in sight while the form scrolls. */
#output-column { position: sticky; top: 0.5rem; align-self: flex-start; }
/* Small canvases (64 x 64 in the shapes world) fill the frame, their pixels kept sharp. */
#canvas img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
"""

#: The page's own fonts: the system's, so no font service is asked (Gradio's default theme loads
#: Google fonts).
THEME_FONTS = {"font": ["system-ui", "sans-serif"], "font_mono": ["ui-monospace", "monospace"]}


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def status_html(view: View) -> str:
    """The line above the image: the view's message, and while steps are done a progress bar with
    the step, the loss and the time left."""
    parts = [f'<div id="pixray-message">{html.escape(view.message)}</div>']
    if view.total:
        loss = f" · loss {view.loss:.4f}" if view.loss is not None else ""
        left = f" · about {_duration(view.seconds_left)} left" if view.seconds_left is not None else ""
        parts.append(f'<progress value="{view.done}" max="{view.total}"></progress>'
                     f'<div id="pixray-step">step {view.done} of {view.total}{loss}{left}</div>')
    return "".join(parts)


def _error_box(message: str | None) -> dict[str, Any]:
    return gr.update(value=f'<div class="pixray-error">{html.escape(message)}</div>' if message else "",
                     visible=bool(message))


def _text_box(field: Field) -> bool:
    # A number that may be unset is a text box too: Gradio's number box shows and sends 0 for "no value".
    return field.kind == "text" or (field.kind == "number" and field.spec.default is None)


def _shown(field: Field, value: Any) -> Any:
    """``value`` as ``field``'s input takes it: text for a text box; for the image, the picture itself
    (a file anywhere on the machine, which the page could not serve by its path), or nothing when it
    cannot be read."""
    if field.kind == "image" and value:
        try:
            with Image.open(value) as img:
                return as_shown(img)
        except OSError:
            return None
    if _text_box(field):
        return "" if value is None else str(value)
    return value


def _field(field: Field, value: Any) -> gr.components.Component:
    """The input of one field: label, help, choices and bounds from its setting."""
    spec, common = field.spec, {"label": field.name, "elem_id": f"field-{field.name}"}
    value = _shown(field, value)
    if field.kind == "image":
        return gr.Image(value=value, type="filepath", sources=["upload", "clipboard"], height=180, **common)
    if field.kind == "choice":
        return gr.Dropdown(choices=list(spec.choices or ()), value=value, info=field.info, **common)
    if field.kind == "switch":
        return gr.Checkbox(value=bool(value), info=field.info, **common)
    if not _text_box(field):
        # No bounds here: the settings tree's check gives the command line's message by the field.
        return gr.Number(value=value, precision=0 if spec.value_type is int else None, info=field.info,
                         **common)
    return gr.Textbox(value=value, info=field.info, lines=2 if field.name == "prompts" else 1, **common)


def _form_updates(form: Mapping[str, Any]) -> list[Any]:
    """Values for the form's inputs, in FIELDS order."""
    return [_shown(field, form.get(field.name)) for field in fields()]


def build_app(page: Page, demo: bool = False) -> gr.Blocks:
    """The page (not yet launched): the form starts from the page's base settings, or with ``demo``
    from the shapes-world preset."""
    start, start_advanced = page.demo_preset() if demo else (form_from_settings(page.base)[0], "")
    # Every frame shown is a file in Gradio's cache: files older than a day go, checked hourly.
    with gr.Blocks(title="pixray", analytics_enabled=False, delete_cache=(3600, 86400)) as app:
        gr.Markdown("## pixray\nCLIP-guided image generation: write prompts, press Generate, watch the "
                    "image form. Every setting of the `pixray` command is here: the common ones as fields, "
                    "the rest as `name: value` lines under *Advanced settings*.")
        inputs: dict[str, gr.components.Component] = {}
        errors: dict[str, gr.HTML] = {}
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                for field in fields():
                    inputs[field.name] = _field(field, start.get(field.name))
                    errors[field.name] = gr.HTML(visible=False, elem_id=f"error-{field.name}")
                    if field.name == "prompts":  # the buttons by the prompts, in sight of the image
                        with gr.Row():
                            generate = gr.Button("Generate", variant="primary", elem_id="generate")
                            stop = gr.Button("Stop", variant="stop", elem_id="stop")
                            preset = gr.Button("Demo preset", elem_id="demo-preset")
                with gr.Accordion("Advanced settings", open=bool(start_advanced)):
                    advanced = gr.Textbox(value=start_advanced, lines=8, max_lines=30, label=ADVANCED,
                                          elem_id=f"field-{ADVANCED}",
                                          info="Any other setting, one 'name: value' line each, as in a "
                                               "--config file (pixray --help lists them all)")
                    errors[ADVANCED] = gr.HTML(visible=False, elem_id=f"error-{ADVANCED}")
                with gr.Accordion("Settings reference", open=False):
                    gr.Markdown(reference(), elem_id="settings-reference")
            with gr.Column(scale=3, elem_id="output-column"):
                status = gr.HTML(status_html(View("Ready")), elem_id="pixray-status")
                image = gr.Image(label="image", interactive=False, format="png", elem_id="canvas", height=440,
                                 buttons=["download", "fullscreen"])
                files = gr.File(label="downloads", file_count="multiple", interactive=False,
                                elem_id="downloads")
        with gr.Accordion("Gallery", open=True):
            gallery = gr.Gallery(label="pictures", columns=6, height="auto", allow_preview=False,
                                 fit_columns=False, elem_id="gallery")
            with gr.Row():
                refresh = gr.Button("Refresh", elem_id="refresh")
                use = gr.Button("Use these settings", elem_id="use-settings")
            gallery_note = gr.HTML(visible=False, elem_id="gallery-note")
        shown_paths = gr.State([])
        chosen = gr.State(None)

        form_inputs = [inputs[name] for name in FIELDS]
        error_outputs = [errors[name] for name in (*FIELDS, ADVANCED)]

        def on_generate(request: gr.Request, *values: Any) -> Iterator[dict[Any, Any]]:
            form, advanced_text = dict(zip(FIELDS, values[:-1], strict=True)), values[-1]
            shown: tuple[Mapping[str, str], bool] | None = None  # errors and running, as on the page
            for view in page.generate(request.session_hash, form, advanced_text):
                update: dict[Any, Any] = {status: status_html(view)}
                if shown != (view.errors, view.running):  # not again with every step's progress
                    shown = (view.errors, view.running)
                    update[generate] = gr.update(interactive=not view.running)
                    update.update({box: _error_box(view.errors.get(name))
                                   for name, box in zip((*FIELDS, ADVANCED), error_outputs, strict=True)})
                if view.image is not None:
                    update[image] = view.image
                if view.files is not None:
                    update[files] = [str(path) for path in view.files]
                yield update

        def on_stop(request: gr.Request) -> None:
            page.stop(request.session_hash)

        def on_refresh() -> tuple[list[tuple[str, str]], list[str]]:
            shown = page.gallery()
            return [(str(p.path), p.caption) for p in shown], [str(p.path) for p in shown]

        def on_select(paths: Sequence[str], evt: gr.SelectData) -> str | None:
            return paths[evt.index] if 0 <= evt.index < len(paths) else None

        def on_use(path: str | None) -> list[Any]:
            unchanged = [gr.update()] * (len(FIELDS) + 1)
            if not path:
                return [*unchanged, _error_box("Choose a picture in the gallery first")]
            try:
                form, advanced_text = page.settings_of(path)
            except SettingsError as exc:
                return [*unchanged, _error_box(one_line(exc))]
            return [*_form_updates(form), advanced_text, _error_box(None)]

        def on_preset() -> list[Any]:
            form, advanced_text = page.demo_preset()
            return [*_form_updates(form), advanced_text]

        run_event = generate.click(on_generate, [*form_inputs, advanced],
                                   [status, generate, image, files, *error_outputs],
                                   concurrency_limit=1, concurrency_id="run", show_progress="minimal",
                                   show_progress_on=[status])
        run_event.then(on_refresh, None, [gallery, shown_paths], show_progress="hidden")
        stop.click(on_stop, None, None, queue=False)
        refresh.click(on_refresh, None, [gallery, shown_paths], show_progress="hidden")
        app.load(on_refresh, None, [gallery, shown_paths], show_progress="hidden")
        gallery.select(on_select, shown_paths, chosen, show_progress="hidden")
        use.click(on_use, chosen, [*form_inputs, advanced, gallery_note], show_progress="hidden")
        preset.click(on_preset, None, [*form_inputs, advanced], show_progress="hidden")
    return app


def _quiet(record: logging.LogRecord) -> bool:
    return False


def serve(page: Page, host: str, port: int, announce: Callable[[str], None], share: bool = False,
          demo: bool = False, open_browser: bool = False, login: tuple[str, str] | None = None) -> None:
    """Serve the page until interrupted (``announce`` is told its address): one run at a time, later
    Generate presses waiting in a queue that shows each its place; with ``login`` (user, password)
    only to who gives them."""
    app = build_app(page, demo)
    app.queue(default_concurrency_limit=1)
    server_log = logging.getLogger("uvicorn.error")
    server_log.addFilter(_quiet)  # an address it cannot bind is said once, below, in pixray's words
    try:
        _, local_url, share_url = app.launch(
            server_name=host, server_port=port, share=share, inbrowser=open_browser, ssr_mode=False,
            quiet=True, prevent_thread_lock=True, theme=gr.themes.Default(**THEME_FONTS), css=CSS,
            footer_links=[], allowed_paths=[str(Path(page.root).resolve())], show_error=True, auth=login)
    except OSError:  # Gradio's for any address it cannot bind, naming its own variables, not our flags
        app.close()
        raise SettingsError(f"pixray ui cannot serve on {host}:{port} (the port is in use, or the address "
                            "is not this machine's): choose another --port or --host") from None
    finally:
        server_log.removeFilter(_quiet)
    announce(f"pixray ui: {local_url}" + (f" (public: {share_url})" if share_url else ""))
    try:
        while app.is_running:  # until Ctrl-C or SIGTERM, which the caller reports
            time.sleep(0.2)
    finally:
        app.close()

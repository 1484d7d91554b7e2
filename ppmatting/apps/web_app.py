"""The interactive matting page (Gradio): photo, trimap four ways, model, new background, results.

``python tools/web_app.py`` calls :func:`serve`. The page only wires widgets to functions; what
each request does is in ``ppmatting.apps.web_matting`` (model choice, reading, matting, writing)
and ``ppmatting.apps.web_trimap`` (trimaps from brush strokes), which have no UI code.

Local and private by design: it listens on 127.0.0.1 unless told otherwise, makes no share link,
sends no analytics (``GRADIO_ANALYTICS_ENABLED=False`` and ``analytics_enabled=False``), loads no
asset from outside the server (Gradio 6's default theme uses its bundled fonts), and keeps every
upload and result inside one temporary folder of its own (Gradio's temp dir and Python's
``tempfile`` both point into it). Requests run one at a time (one concurrency group of size 1),
so two visitors cannot run two solves at once and exhaust the machine.
"""
import atexit
import logging
import os
import shutil
import signal
import sys
import tempfile
import traceback
from dataclasses import dataclass
from typing import Optional

from ppmatting.apps import web_matting as wm
from ppmatting.apps.background import parse_background
from ppmatting.apps import web_trimap as wt
from ppmatting.cvlibs.config import PROJECT_ROOT
from ppmatting.utils.errors import InputError, PPMattingError

DEMO_DIR = os.path.join(PROJECT_ROOT, "data", "matting_demo")
EXAMPLES = (
    ("demo/demo.png", "demo/demo_trimap.png"),
    ("val/image/00_furry.png", "val/trimap/00_furry.png"),
    ("val/image/01_hair.png", "val/trimap/01_hair.png"),
    ("val/image/02_veil.png", "val/trimap/02_veil.png"),
    ("val/image/03_smoke.png", "val/trimap/03_smoke.png"),
)
# all the page's matting work shares this queue slot
CONCURRENCY_ID = "matting"
MAX_UPLOAD = "200mb"


@dataclass
class Settings:
    """What ``tools/web_app.py`` passes (see its ``--help``)."""
    config: Optional[str] = None
    model_path: Optional[str] = None
    host: str = "127.0.0.1"
    port: int = 7860
    temp_dir: Optional[str] = None
    max_photo_pixels: int = wm.DEFAULT_MAX_PHOTO_PIXELS
    max_memory_gb: Optional[float] = None
    scribble_pixels: int = wm.DEFAULT_SCRIBBLE_PIXELS
    warmup: bool = True


# ---- the temporary folder ------------------------------------------------------------------------
def prepare_temp_dir(temp_dir=None):
    """Make the app's one temporary folder and point Gradio and ``tempfile`` into it.

    Must run before ``gradio`` is imported (it reads ``GRADIO_TEMP_DIR`` at import). Without
    ``temp_dir`` a new folder is made and removed at exit. Returns its absolute path.
    """
    if temp_dir:
        root = os.path.abspath(temp_dir)
        os.makedirs(root, exist_ok=True)
    else:
        root = tempfile.mkdtemp(prefix="ppmatting-web-")
        atexit.register(shutil.rmtree, root, True)
    for sub in ("gradio", "results", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(root, "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["TMPDIR"] = os.path.join(root, "tmp")
    tempfile.tempdir = os.path.join(root, "tmp")
    return root


# ---- the page ------------------------------------------------------------------------------------
class App:
    """The page's state that outlives a request: model list, loaded models, result folders."""

    def __init__(self, settings, temp_root):
        self.settings = settings
        self.choices, self.default_choice = wm.model_choices(settings.config, settings.model_path)
        self.cache = wm.MatterCache()
        self.results = wm.ResultFolders(os.path.join(temp_root, "results"))

    def choice(self, label):
        if label not in self.choices:
            raise InputError(f"model '{label}' is not one of: {', '.join(self.choices)}")
        return self.choices[label]

    def warm_up(self, log=print):
        """Load the default model and matte a tiny picture once, so the first visitor does not
        wait for numba's kernels (compiled once per machine, then read from numba's cache) or
        for DIM's Paddle Inference graph."""
        import numpy as np

        choice = self.choices[self.default_choice]
        log(f"loading {choice.label} ...")
        yy, xx = np.mgrid[:32, :32]
        image01 = np.repeat((xx / 31.0)[:, :, None], 3, axis=2).astype(np.float32)
        trimap_u8 = np.full((32, 32), 128, np.uint8)
        trimap_u8[:, :8] = 0
        trimap_u8[:, 24:] = 255
        matter = self.cache.get(choice, choice.opts(max_memory_gb=self.settings.max_memory_gb))
        matter.matte(image01, trimap_u8)

    # -- request handlers (each gets the page's values, returns the page's updates) --------------
    def make_trimap(self, photo_path, source, trimap_path, paint, unpainted, mask, mask_path,
                    band_width, scribbles, check=True):
        image01 = wm.read_photo(photo_path, self.settings.max_photo_pixels)
        trimap_u8 = wm.build_trimap(
            source, image01.shape[:2], trimap_path=trimap_path, paint_layers=_layers(paint),
            unpainted=unpainted, mask_layers=_layers(mask), mask_path=mask_path,
            unknown_width=band_width, scribble_layers=_layers(scribbles), check=check)
        return image01, trimap_u8

    def matte(self, photo_path, image01, trimap_u8, source, model_label, param_values, background,
              scribble_pixels, report):
        choice = self.choice(model_label)
        notes = []
        max_pixels = None
        if source == "scribbles":
            if choice.classical:
                max_pixels = int(scribble_pixels)
                if image01.shape[0] * image01.shape[1] > max_pixels:
                    notes.append(f"scribbles: solved at {max_pixels:,} pixels and upsampled")
            else:
                notes.append("note: DIM was trained on trimaps with a narrow unknown band; for "
                             "scribbles, closed-form matting is the method")
        opts = choice.opts(param_values, self.settings.max_memory_gb, max_pixels)
        return wm.matte_request(photo_path, image01, trimap_u8, choice, opts, background,
                                self.results, self.cache, report=report, notes=notes)


def _layers(editor_value):
    """The brush layers of an ImageEditor value (None when nothing was loaded)."""
    if not editor_value:
        return None
    return editor_value.get("layers") or None


def _editor_value(photo_path):
    return {"background": photo_path, "layers": [], "composite": None} if photo_path else None


def _brush_editor(gr, label, colors, elem_id, layer_name, info):
    return _layers_only(gr.ImageEditor(
        label=label, type="numpy", image_mode="RGBA", elem_id=elem_id, sources=(),
        transforms=(), format="png", height=460,
        brush=gr.Brush(colors=list(colors), default_color=colors[0], color_mode="fixed",
                       default_size=12),
        eraser=gr.Eraser(default_size=12),
        layers=gr.LayerOptions(allow_additional_layers=False, layers=[layer_name]),
        placeholder=info))


# Two of Gradio's components get their own ``preprocess`` per instance rather than through a
# subclass: Gradio's component metaclass writes a ``.pyi`` stub beside the module of every
# component class, which would put a file into the installed package.
def _pass_upload_path(image):
    """Make a ``gr.Image`` hand over the uploaded file's path unopened. Gradio would open it with
    PIL first and stop a non-image with a long internal message; ppmatting's readers decode it
    instead (16-bit and RGBA included) and name the file in one line."""
    original = image.preprocess

    def preprocess(payload):
        if payload is None or payload.path is None:
            return original(payload)
        return str(payload.path)

    image.preprocess = preprocess
    return image


def _layers_only(editor):
    """Make a ``gr.ImageEditor`` hand over only its brush layers: the photo under them is read from
    the upload itself, so the editor's copies of it (background and composite) are neither
    decoded nor trusted."""
    original = editor.preprocess

    def preprocess(payload):
        if payload is None:
            return None
        cached = editor.blob_storage.get(payload.id) if payload.id is not None else None
        if cached is not None:
            cached.background = cached.composite = None
        else:
            payload = payload.model_copy(update={"background": None, "composite": None})
        return original(payload)

    editor.preprocess = preprocess
    return editor


def build_page(app):
    """The Gradio Blocks of the page (not launched)."""
    import gradio as gr

    def upload_image(label, **kwargs):
        """An upload box whose handlers get the file's path (see :func:`_pass_upload_path`)."""
        return _pass_upload_path(gr.Image(label=label, type="filepath", image_mode=None,
                                          **kwargs))

    settings = app.settings
    first = app.choices[app.default_choice]
    with gr.Blocks(title="ppmatting: interactive matting", analytics_enabled=False,
                   delete_cache=(1800, 3600)) as page:
        gr.Markdown("## ppmatting: cut a subject out of a photo\n"
                    "1. a photo, 2. a trimap (white = subject, black = background, gray = "
                    "unknown: hair and soft edges), 3. **Matte**. Everything runs on this "
                    "machine; nothing leaves it.")
        source = gr.State("upload")
        # made here, shown in the trimap tabs: the examples (left column) fill it
        trimap_file = upload_image("2. Trimap (white / black / gray 128)", sources=["upload"],
                                   elem_id="trimap_file", height=380, render=False)
        with gr.Row():
            with gr.Column(scale=1):
                photo = upload_image("1. Photo (PNG / JPEG, 8 or 16 bit, RGBA)",
                                     sources=["upload", "clipboard"], elem_id="photo",
                                     height=380)
                gr.Examples([[os.path.join(DEMO_DIR, p), os.path.join(DEMO_DIR, t)]
                             for p, t in EXAMPLES], inputs=[photo, trimap_file],
                            label="Examples: a photo with its trimap (one click)",
                            elem_id="examples")
            with gr.Column(scale=1):
                with gr.Tabs(selected="upload", elem_id="trimap_tabs") as tabs:
                    with gr.Tab("Upload a trimap", id="upload") as tab_upload:
                        trimap_file.render()
                    with gr.Tab("Paint a trimap", id="paint") as tab_paint:
                        paint = _brush_editor(
                            gr, "paint: white = subject, black = background, gray = unknown",
                            (wt.FOREGROUND_BRUSH, wt.BACKGROUND_BRUSH, wt.UNKNOWN_BRUSH),
                            "paint_editor", "trimap", "load a photo first")
                        unpainted = gr.Radio(list(wt.UNPAINTED_CHOICES), value="background",
                                             label="unpainted pixels are")
                    with gr.Tab("Mask + band", id="mask") as tab_mask:
                        mask = _brush_editor(
                            gr, "paint roughly over the subject", (wt.MASK_BRUSH,),
                            "mask_editor", "mask", "load a photo first")
                        mask_file = upload_image("or upload a mask (white = subject)",
                                                 sources=["upload"], elem_id="mask_file",
                                                 height=160)
                        band_width = gr.Slider(1, 60, value=10, step=1,
                                               label="unknown band: pixels on each side of the "
                                                     "mask's edge (tools/make_trimap.py "
                                                     "--unknown_width)")
                    with gr.Tab("Scribbles", id="scribbles") as tab_scribbles:
                        scribbles = _brush_editor(
                            gr, "a few strokes: white on the subject, black on the background",
                            (wt.FOREGROUND_BRUSH, wt.BACKGROUND_BRUSH), "scribble_editor",
                            "scribbles", "load a photo first")
                        scribble_pixels = gr.Slider(
                            *wm.SCRIBBLE_PIXEL_RANGE, value=settings.scribble_pixels,
                            step=10_000,
                            label="solve at most this many pixels (larger photos are solved "
                                  "downscaled, then upsampled guided by the photo)")
        with gr.Row():
            show_trimap = gr.Button("Show the trimap", elem_id="show_trimap")
            run = gr.Button("Matte", variant="primary", elem_id="matte")
        with gr.Row():
            with gr.Column(scale=1):
                gr.Markdown("**Model**")
                model = gr.Dropdown(list(app.choices), value=app.default_choice, label="method",
                                    elem_id="model")
                param_widgets = []
                for param in wm.PARAMS:
                    visible = param.key in first.defaults
                    value = first.defaults.get(param.key)
                    if param.step == 0.0:
                        widget = gr.Number(value=value, label=param.label, info=param.info,
                                           visible=visible, minimum=param.minimum,
                                           maximum=param.maximum)
                    else:
                        widget = gr.Slider(param.minimum, param.maximum, value=value,
                                           step=param.step, label=param.label, info=param.info,
                                           visible=visible)
                    param_widgets.append(widget)
            with gr.Column(scale=1):
                gr.Markdown("**New background**")
                bg_kind = gr.Radio(list(wm.BACKGROUND_KINDS), value="colour", label="kind",
                                   elem_id="bg_kind")
                bg_color = gr.ColorPicker(value="#1e90ff", label="colour", elem_id="bg_color")
                bg_picture = upload_image("picture (cover-fitted: scaled and centre-cropped)",
                                          sources=["upload"], height=160,
                                          elem_id="bg_picture")
                bg_blur = gr.Slider(1, 60, value=12, step=1,
                                    label="blurred photo: blur sigma (pixels)")
            with gr.Column(scale=1):
                gr.Markdown("**Trimap over the photo** (orange = unknown, dark = background)")
                trimap_view = gr.Image(label="trimap over the photo", interactive=False,
                                       format="png", elem_id="trimap_view", buttons=["download", "fullscreen"], height=300)
                trimap_download = gr.DownloadButton("trimap PNG", visible=False,
                                                    elem_id="trimap_download")
        with gr.Column(elem_id="results"):
            status = gr.Markdown("", elem_id="status")
            with gr.Row():
                photo_out = gr.Image(label="photo", interactive=False, format="png",
                                     elem_id="photo_out", buttons=["download", "fullscreen"])
                alpha_out = gr.Image(label="alpha", interactive=False, format="png",
                                     elem_id="alpha_out", buttons=["download", "fullscreen"])
                cutout_out = gr.Image(label="cut-out", interactive=False, format="png",
                                      elem_id="cutout_out", buttons=["download", "fullscreen"])
                composite_out = gr.Image(label="on the new background", interactive=False,
                                         format="png", elem_id="composite_out",
                                         buttons=["download", "fullscreen"])
            with gr.Row():
                alpha_download = gr.DownloadButton("alpha PNG", visible=False,
                                                   elem_id="alpha_download")
                rgba_download = gr.DownloadButton("cut-out PNG (RGBA)", visible=False,
                                                  elem_id="rgba_download")
                composite_download = gr.DownloadButton("composite PNG", visible=False,
                                                       elem_id="composite_download")
        api_background = gr.Textbox(value="dodgerblue", visible=False,
                                    label="background (API): colour, #rrggbb, r,g,b or blur:SIGMA")

        # -- wiring ----------------------------------------------------------------------------
        trimap_inputs = [photo, source, trimap_file, paint, unpainted, mask, mask_file,
                         band_width, scribbles]
        result_outputs = [status, photo_out, alpha_out, cutout_out, composite_out,
                          alpha_download, rgba_download, composite_download, trimap_view,
                          trimap_download]

        def on_photo(photo_path):
            try:
                if photo_path:
                    width, height = wm.check_photo(photo_path, settings.max_photo_pixels)
                    text = f"photo {wm.shown_name(photo_path)}: {width} x {height} px"
                else:
                    text = ""
                value = _editor_value(photo_path)
            except Exception as err:
                value, text = None, _error_text(err)
            return value, value, value, text

        photo.change(on_photo, photo, [paint, mask, scribbles, status],
                     api_visibility="private")

        def on_trimap_file(trimap_path):
            if trimap_path:
                return gr.Tabs(selected="upload"), "upload"
            return gr.Tabs(), gr.skip()

        trimap_file.change(on_trimap_file, trimap_file, [tabs, source],
                           api_visibility="private")
        for tab, name in ((tab_upload, "upload"), (tab_paint, "paint"), (tab_mask, "mask"),
                          (tab_scribbles, "scribbles")):
            tab.select(lambda name=name: name, None, source, api_visibility="private")

        def on_model(label):
            choice = app.choice(label)
            return [gr.update(visible=p.key in choice.defaults, value=choice.defaults.get(p.key))
                    for p in wm.PARAMS]

        model.change(on_model, model, param_widgets, api_visibility="private")

        def preview(*values):
            try:
                image01, trimap_u8 = app.make_trimap(*values, check=False)
                path = wm.save_trimap(trimap_u8, values[0], app.results)
                height, width = trimap_u8.shape
                counts = ", ".join(f"{name} {100.0 * (trimap_u8 == v).mean():.0f} %"
                                   for name, v in (("subject", 255), ("unknown", 128),
                                                   ("background", 0)))
                return (wt.trimap_overlay(image01, trimap_u8),
                        gr.DownloadButton(value=path, visible=True),
                        f"trimap {width} x {height}: {counts}")
            except Exception as err:  # shown in the page; the server keeps serving
                return None, gr.DownloadButton(visible=False), _error_text(err)

        show_trimap.click(preview, trimap_inputs, [trimap_view, trimap_download, status],
                          concurrency_id=CONCURRENCY_ID, api_visibility="private")

        def on_run(*values, progress=gr.Progress()):
            trimap_values = values[:len(trimap_inputs)]
            rest = values[len(trimap_inputs):]
            model_label = rest[0]
            param_values = dict(zip((p.key for p in wm.PARAMS), rest[1:1 + len(wm.PARAMS)]))
            kind, color, picture, blur, scribble_px = rest[1 + len(wm.PARAMS):]
            try:
                progress(0.0, desc="reading the photo and the trimap")
                image01, trimap_u8 = app.make_trimap(*trimap_values)
                background = wm.background_from_page(kind, color, picture, blur)
                choice = app.choice(model_label)
                shown = {k: v for k, v in param_values.items() if k in choice.defaults}
                result = app.matte(trimap_values[0], image01, trimap_u8, trimap_values[1],
                                   model_label, shown, background, scribble_px,
                                   lambda f, text: progress(f, desc=text))
            except Exception as err:
                blank = gr.DownloadButton(visible=False)
                return [_error_text(err), None, None, None, None, blank, blank, blank, None,
                        blank]
            paths = result.paths
            return [result.summary, result.photo_u8, paths["alpha"], result.cutout_view_u8,
                    paths[next(k for k in paths if k.startswith("on "))],
                    gr.DownloadButton(value=paths["alpha"], visible=True),
                    gr.DownloadButton(value=paths["rgba"], visible=True),
                    gr.DownloadButton(value=paths[next(k for k in paths if k.startswith("on "))],
                                      visible=True),
                    result.trimap_view_u8,
                    gr.DownloadButton(value=paths["trimap"], visible=True)]

        run.click(on_run, trimap_inputs + [model] + param_widgets
                  + [bg_kind, bg_color, bg_picture, bg_blur, scribble_pixels],
                  result_outputs, concurrency_id=CONCURRENCY_ID, api_visibility="private")

        def api_matte(photo_path, trimap_path, model_label, background_spec,
                      progress=gr.Progress()):
            """Matte a photo with its trimap file. Returns the alpha PNG, the RGBA cut-out PNG,
            the composite PNG and a one-line summary (size, model, seconds)."""
            try:
                image01 = wm.read_photo(photo_path, settings.max_photo_pixels)
                trimap_u8 = wm.build_trimap("upload", image01.shape[:2], trimap_path=trimap_path)
                background = parse_background(background_spec or "dodgerblue")
                result = app.matte(photo_path, image01, trimap_u8, "upload",
                                   model_label or app.default_choice, {}, background, None,
                                   lambda f, text: progress(f, desc=text))
            except Exception as err:
                raise gr.Error(_error_text(err, markdown=False), print_exception=False) from None
            composite_key = next(k for k in result.paths if k.startswith("on "))
            return (result.paths["alpha"], result.paths["rgba"], result.paths[composite_key],
                    result.summary)

        api_button = gr.Button(visible=False)
        api_button.click(api_matte, [photo, trimap_file, model, api_background],
                         [alpha_download, rgba_download, composite_download, status],
                         api_name="matte", concurrency_id=CONCURRENCY_ID)
    return page


def _error_text(err, markdown=True):
    """One line for the page; unexpected errors also leave their traceback in the server log."""
    if not isinstance(err, PPMattingError):
        traceback.print_exc()
    text = wm.user_message(err)
    return f"**error:** {text}" if markdown else f"error: {text}"


def serve(settings, log=print, block=True):
    """Prepare the temporary folder, build the page, launch it; print its URL.

    With ``block=False`` returns ``(page, url)`` with the server running in a thread (tests).
    """
    temp_root = prepare_temp_dir(settings.temp_dir)
    import gradio as gr  # noqa: F401  (after GRADIO_TEMP_DIR is set)

    # Gradio polls its own server through httpx; its INFO lines are noise in the app's log
    logging.getLogger("httpx").setLevel(logging.WARNING)

    app = App(settings, temp_root)
    if settings.warmup:
        app.warm_up(log)
    page = build_page(app)
    page.queue(default_concurrency_limit=1, max_size=32)
    _, url, _ = page.launch(
        server_name=settings.host, server_port=settings.port, share=False, inbrowser=False,
        prevent_thread_lock=True, quiet=True, show_error=True, max_file_size=MAX_UPLOAD,
        allowed_paths=[DEMO_DIR, app.results.root], ssr_mode=False, pwa=False, mcp_server=False,
        enable_monitoring=False)
    log(f"ppmatting web app: {url} (temporary files in {temp_root}; Ctrl+C stops it)")
    sys.stdout.flush()
    if not block:
        return page, url
    # a plain SIGTERM would skip the atexit removal of the temporary folder
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        page.block_thread()
    finally:
        page.close()
    return page, url

"""The web demo (``amodal-sam app``): amodal completion in a browser, through Gradio.

Single object: upload an image; give the visible part as an uploaded mask, as strokes painted
over the image, as points clicked on it or as a box; see the overlay (visible, hidden, what
hides it), the amodal mask and the hypotheses with their predicted IoU. Scene: upload an image
and its objects' visible masks as one index PNG (0 = background, k = object k, the rules of
``amodal-sam scene --masks``); see every object completed and their order. The example scene of
``examples/`` is preloaded. The page binds to 127.0.0.1 unless told otherwise.

The work is done by :func:`complete_files` and :func:`complete_scene_file` (files in, pictures
and a summary out), which read files by the command line's rules; the page only wires them to
widgets. Needs the ``app`` extra (``pip install "amodal-sam[app]"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amodal_sam.image_io import read_rgb
from amodal_sam.mask_files import read_mask
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.predictor import AmodalPredictor
from amodal_sam.scene_files import read_scene_masks
from amodal_sam.visualize import overlay, scene_overlay

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class AppCompletion:
    """What the page shows for one object: ``overlay`` (H, W', 3) uint8 with its legend,
    ``amodal`` (H, W) uint8 mask (255 = object), ``hypotheses`` as (mask picture, caption) pairs
    and a Markdown ``summary``."""

    overlay: np.ndarray
    amodal: np.ndarray
    hypotheses: list[tuple[np.ndarray, str]]
    summary: str


def parse_points(text: str | None) -> list[list[float]]:
    """``"x,y; x,y"`` (image pixels) -> [[x, y], ...]; empty text: no points. A ValueError names
    the part that is not two numbers."""
    points = []
    for part in (text or "").replace("\n", ";").split(";"):
        if not part.strip():
            continue
        values = part.replace(" ", "").split(",")
        try:
            point = [float(v) for v in values]
        except ValueError:
            point = []
        if len(point) != 2:
            raise ValueError(f"points: {part.strip()!r} is not x,y (two numbers)")
        points.append(point)
    return points


def parse_box(text: str | None) -> list[float] | None:
    """``"x0,y0,x1,y1"`` (image pixels) -> the box, or None for empty text."""
    if not (text or "").strip():
        return None
    try:
        box = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        box = []
    if len(box) != 4:
        raise ValueError(f"box: {text.strip()!r} is not x0,y0,x1,y1 (four numbers)")
    return box


def painted_mask(editor_value: dict | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The strokes painted in an image editor (Gradio's ``ImageEditor`` value: ``layers`` of
    (H, W, 4) RGBA arrays) as an (H, W) bool mask, or None when nothing was painted."""
    layers = [layer for layer in (editor_value or {}).get("layers") or [] if layer is not None]
    if not layers:
        return None
    painted = np.zeros(shape, dtype=bool)
    for layer in layers:
        layer = np.asarray(layer)
        if layer.shape[:2] != shape:
            raise ValueError(
                f"the painted mask is {layer.shape[1]}x{layer.shape[0]}; the image is {shape[1]}x{shape[0]}"
            )
        painted |= layer[..., 3] > 0 if layer.ndim == 3 and layer.shape[2] == 4 else layer.reshape(shape) > 0
    return painted if painted.any() else None


def complete_files(
    predictor: AmodalPredictor,
    image_path: str | Path,
    *,
    mask_path: str | Path | None = None,
    painted: dict | None = None,
    points: str | None = None,
    box: str | None = None,
) -> AppCompletion:
    """Complete one object of the image at ``image_path`` from its visible mask (a file, painted
    strokes, or both joined), else from clicked ``points`` / a ``box`` (SAM finds the visible part
    first; refused by a model whose SAM is random, as the demo's)."""
    image = read_rgb(image_path)
    shape = image.shape[:2]
    visible = None
    if mask_path:
        visible = read_mask(mask_path, "visible mask")
        if visible.shape != shape:
            raise ValueError(
                f"the visible mask is {visible.shape[1]}x{visible.shape[0]}; the image is {shape[1]}x{shape[0]}"
            )
    strokes = painted_mask(painted, shape)
    if strokes is not None:
        visible = strokes if visible is None else visible | strokes
    clicked, rectangle = parse_points(points), parse_box(box)
    predictor.set_image(image)
    if visible is not None:
        result = predictor.complete(visible_mask=visible)
    elif clicked or rectangle is not None:
        result = predictor.complete(
            point_coords=clicked or None, point_labels=[1] * len(clicked) if clicked else None, box=rectangle
        )
    else:
        raise ValueError("give the visible part: upload or paint a mask, click points on the image, or type a box")
    hidden = int(result.occluded.sum())
    summary = (
        f"**amodal** {int(result.amodal.sum())} px: visible {int(result.visible.sum())} px, "
        f"hidden {hidden} px ({hidden / max(int(result.amodal.sum()), 1):.0%}); predicted IoU {result.score:.3f}"
    )
    hypotheses = [
        (mask.astype(np.uint8) * 255, f"hypothesis {k}: predicted IoU {float(score):.3f}")
        for k, (mask, score) in enumerate(zip(result.hypotheses, result.hypothesis_scores))
    ]
    return AppCompletion(
        overlay=overlay(image, result.visible, result.occluded, result.occluder),
        amodal=result.amodal.astype(np.uint8) * 255,
        hypotheses=hypotheses,
        summary=summary,
    )


def complete_scene_file(
    predictor: AmodalPredictor, image_path: str | Path, masks_path: str | Path
) -> tuple[np.ndarray, str]:
    """Complete every object of an index PNG (``amodal-sam scene --masks``'s rules): the scene's
    overlay and a Markdown table of the objects front to back."""
    image = read_rgb(image_path)
    read = read_scene_masks(masks_path, image.shape[:2], "scene masks")
    predictor.set_image(image)
    scene = predictor.complete_scene(read.masks)
    names = [str(name) for name in read.names]
    rows = ["| object | layer | visible px | hidden px |", "| --- | --- | --- | --- |"]
    for k in sorted(range(len(scene)), key=lambda k: (int(scene.layers[k]), k)):
        hidden = int(scene.amodal[k].sum()) - int(scene.visible[k].sum())
        rows.append(f"| {names[k]} | {int(scene.layers[k])} | {int(scene.visible[k].sum())} | {hidden} |")
    picture = scene_overlay(image, scene.visible, scene.amodal, scene.layers, names)
    return picture, f"{len(scene)} objects, front (layer 0) to back:\n\n" + "\n".join(rows)


def build_app(model: AmodalSAM):
    """The Gradio page over ``model`` (a ``gradio.Blocks``, not launched). API endpoints:
    ``/complete`` (image, mask file, painted strokes, points, box) and ``/scene`` (image, index
    PNG)."""
    try:
        import gradio as gr
    except ImportError as error:
        raise ImportError(f'the web demo needs the app extra: pip install "amodal-sam[app]" ({error})') from error
    predictor = AmodalPredictor(model)

    def run_complete(image_path, mask_path, painted, points, box):
        if not image_path:
            raise gr.Error("upload an image first")
        try:
            done = complete_files(predictor, image_path, mask_path=mask_path, painted=painted, points=points, box=box)
        except (ValueError, OSError) as error:
            raise gr.Error(str(error)) from error
        return done.overlay, done.amodal, done.hypotheses, done.summary

    def run_scene(image_path, masks_path):
        if not image_path or not masks_path:
            raise gr.Error("upload an image and its objects' index PNG")
        try:
            return complete_scene_file(predictor, image_path, masks_path)
        except (ValueError, OSError) as error:
            raise gr.Error(str(error)) from error

    def add_point(points, event: gr.SelectData):
        x, y = event.index
        return "; ".join(p for p in [(points or "").strip(), f"{x},{y}"] if p)

    add_point.__annotations__["event"] = gr.SelectData  # Gradio reads the type, not this module's string

    def paint_over(image_path):
        return {"background": image_path, "layers": [], "composite": image_path} if image_path else None

    with gr.Blocks(title="amodal_sam") as page:
        gr.Markdown(
            "# amodal_sam: the whole object, hidden parts included\n"
            + (
                "**Demo model: its frozen encoder is random, not SAM.** It completes simple shapes, not real photos; "
                "point and box prompts need a model on real SAM weights (`amodal-sam app --model DIR`)."
                if model.config.sam_type not in ("vit_b", "vit_l", "vit_h")
                else f"Model on SAM {model.config.sam_type}."
            )
        )
        with gr.Tab("Single object"):
            with gr.Row():
                with gr.Column():
                    image = gr.Image(label="Image (click to add points)", type="filepath", elem_id="image")
                    # masks as files, byte for byte: an image widget would re-encode them as RGB
                    mask = gr.File(label="Visible mask (white = object)", file_types=["image"], elem_id="visible-mask")
                    painted = gr.ImageEditor(label="...or paint the visible part over the image", type="numpy")
                    points = gr.Textbox(label="Points x,y; x,y (image pixels)", elem_id="points")
                    box = gr.Textbox(label="Box x0,y0,x1,y1 (image pixels)", elem_id="box")
                    button = gr.Button("Complete", variant="primary", elem_id="complete")
                with gr.Column():
                    shown = gr.Image(label="Overlay", elem_id="overlay")
                    amodal = gr.Image(label="Amodal mask", image_mode="L", format="png", elem_id="amodal")
                    gallery = gr.Gallery(label="Hypotheses", columns=4)
                    summary = gr.Markdown(elem_id="summary")
            image.select(add_point, inputs=points, outputs=points)
            image.change(paint_over, inputs=image, outputs=painted)
            button.click(
                run_complete,
                inputs=[image, mask, painted, points, box],
                outputs=[shown, amodal, gallery, summary],
                api_name="complete",
            )
            gr.Examples([[str(EXAMPLES / "scene.png"), str(EXAMPLES / "scene_visible.png")]], inputs=[image, mask])
        with gr.Tab("Scene"):
            with gr.Row():
                with gr.Column():
                    scene_image = gr.Image(label="Image", type="filepath")
                    scene_masks = gr.File(
                        label="Objects: index PNG (0 = background, k = object k)",
                        file_types=["image"],
                        elem_id="objects",
                    )
                    scene_button = gr.Button("Complete the scene", variant="primary")
                with gr.Column():
                    scene_shown = gr.Image(label="Objects completed, front to back")
                    scene_summary = gr.Markdown()
            scene_button.click(
                run_scene, inputs=[scene_image, scene_masks], outputs=[scene_shown, scene_summary], api_name="scene"
            )
            gr.Examples(
                [[str(EXAMPLES / "scene.png"), str(EXAMPLES / "scene_objects.png")]], inputs=[scene_image, scene_masks]
            )
    return page


def launch_app(model: AmodalSAM, *, host: str = DEFAULT_HOST, port: int | None = None, block: bool = True):
    """Serve :func:`build_app` at ``host``:``port`` (default 127.0.0.1, Gradio's first free port
    from 7860). ``block=False`` returns the launched page (its ``local_url``; ``close()`` stops it)."""
    page = build_app(model)
    page.launch(server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True, quiet=not block)
    return page

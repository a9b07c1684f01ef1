"""The result area: the rendered frame fitted to the space right of the control pane, with
left-drag to orbit, right-drag to move across the seed grid, and a quality/timing overlay."""
from imgui_bundle import imgui

from gui_utils import imgui_compat
from gui_utils.gl_texture import Texture

from .gui_helpers import centred_text

WINDOW_FLAGS = (imgui.WindowFlags_.no_decoration | imgui.WindowFlags_.no_move
                | imgui.WindowFlags_.no_saved_settings | imgui.WindowFlags_.no_bring_to_front_on_focus
                | imgui.WindowFlags_.no_scroll_with_mouse)


def drag_area(viz, w, h):
    """An invisible w x h button: left-drag orbits, right-drag moves on the seed grid.
    Returns whether the user is dragging."""
    imgui.invisible_button('##drag', imgui.ImVec2(w, h), imgui.ButtonFlags_.mouse_button_left
                           | imgui.ButtonFlags_.mouse_button_right)
    if not imgui.is_item_active():
        return False
    delta = imgui.get_io().mouse_delta
    if imgui.is_mouse_down(imgui.MouseButton_.left):
        viz.pose_widget.drag(delta.x, delta.y)
    elif imgui.is_mouse_down(imgui.MouseButton_.right):
        viz.latent_widget.drag(delta.x, delta.y)
    return True


def fit(tw, th, x, y, w, h):
    """The rectangle (x0, y0, x1, y1) of a tw x th image scaled to fit the box, centred."""
    zoom = min(w / tw, h / th)
    x0, y0 = x + (w - tw * zoom) / 2, y + (h - th * zoom) / 2
    return x0, y0, x0 + tw * zoom, y0 + th * zoom


def shadowed_text(draw, x, y, colour, text):
    draw.add_text(imgui.ImVec2(x + 1, y + 1), 0xC0000000, text)
    draw.add_text(imgui.ImVec2(x, y), colour, text)


class Viewport:
    def __init__(self, viz):
        self.viz = viz
        self.texture = None
        self.shown = None             # the RenderResult whose image is on screen
        self.result = None            # the latest RenderResult (may be an error)
        self.interacting = False
        self.image_rect = None        # (x0, y0, x1, y1) where the frame was drawn
        self.centre_text = None       # the message in the middle of the view, if any

    def show_result(self, result):
        if result.image is not None:
            if self.texture is None:
                self.texture = Texture()
            self.texture.update(result.image)
            self.shown = result
        self.result = result

    @property
    def last_image(self):
        """numpy uint8 [H, W, 3] of the frame on screen. Copied from the device only when
        something asks for the pixels (captures, tests): with CUDA-GL interop a frame never
        leaves the GPU otherwise, and the GUI thread never waits for a device copy."""
        return None if self.shown is None else self.shown.host_image

    def __call__(self, x, y, w, h):
        imgui.set_next_window_pos(imgui.ImVec2(x, y))
        imgui.set_next_window_size(imgui.ImVec2(w, h))
        imgui.push_style_var(imgui.StyleVar_.window_padding, imgui.ImVec2(0, 0))
        imgui.begin('##viewport', None, WINDOW_FLAGS)
        self.interacting = drag_area(self.viz, w, h)
        draw = imgui.get_window_draw_list()
        if self.texture is not None and self.result is not None and self.result.image is not None:
            self.image_rect = fit(self.texture.width, self.texture.height, x, y, w, h)
            x0, y0, x1, y1 = self.image_rect
            draw.add_image(imgui_compat.texture(self.texture.id), imgui.ImVec2(x0, y0),
                           imgui.ImVec2(x1, y1))
        self._overlay(draw, x, y, w, h)
        imgui.end()
        imgui.pop_style_var()

    def _overlay(self, draw, x, y, w, h):
        result, viz = self.result, self.viz
        status = viz.worker.status
        lines = []
        if result is not None and result.image is not None:
            quality = 'preview (raw neural rendering)' if result.quality == 'preview' else 'full quality'
            depth, importance = result.samples
            lines.append(f'{quality}  |  neural {result.nrr}^2, {depth}+{importance} '
                         f'samples  |  {result.timings["total"]:.0f} ms')
            if viz.worker.busy:
                lines.append('rendering...')
        pad = viz.spacing
        for i, line in enumerate(lines):
            shadowed_text(draw, x + pad, y + pad + i * viz.font_size * 1.3, 0xFFFFFFFF, line)
        failed = viz.pickle_widget.error
        if failed:
            centred_text(draw, x, y, w, h, 0xFF6666FF, failed, anchor=1, margin=pad)
        centre = status or (result.error if result is not None and result.error else None) \
            or (result.message if result is not None else None)
        if centre is None and result is None:
            centre = 'Rendering...' if viz.pickle_widget.pkl else \
                viz.trainer_widget.waiting_message() or \
                'No network loaded: open a pickle in "Network & latent"'
        self.centre_text = centre
        if centre:
            colour = 0xFF6666FF if result is not None and result.error and not status else 0xFFFFFFFF
            centred_text(draw, x, y, w, h, colour, centre, margin=pad)

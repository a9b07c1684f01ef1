"""Dear ImGui (imgui-bundle) on a GlfwWindow: context, input, fonts shipped with the package."""
import os

import glfw
import imgui_bundle
from imgui_bundle import imgui, implot
from imgui_bundle.python_backends.glfw_backend import GlfwRenderer

from . import imgui_compat
from .window import GlfwWindow

FONT_PATH = os.path.join(os.path.dirname(imgui_bundle.__file__), 'assets', 'fonts', 'Roboto',
                         'Roboto-Regular.ttf')
FONT_SIZE = 16


class ImguiWindow(GlfwWindow):
    def __init__(self, title, width, height, headless=False, vsync=False, close_on_esc=True):
        super().__init__(title, width, height, headless=headless, vsync=vsync)
        self.context = imgui_compat.create_context()
        implot.create_context()
        io = imgui.get_io()
        imgui_compat.no_ini_file(io)
        io.config_drag_click_to_input_text = True
        io.fonts.add_font_from_file_ttf(FONT_PATH, FONT_SIZE)   # bundled: nothing is downloaded
        self.renderer = GlfwRenderer(self.handle)
        if close_on_esc:
            self._chain_escape()
        imgui.style_colors_dark()
        style = imgui.get_style()
        style.frame_rounding = style.grab_rounding = style.popup_rounding = 3
        style.window_rounding = 0
        self.font_size = FONT_SIZE

    def _chain_escape(self):
        renderer_callback = self.renderer.keyboard_callback

        def on_key(window, key, scancode, action, mods):
            renderer_callback(window, key, scancode, action, mods)
            if key == glfw.KEY_ESCAPE and action == glfw.PRESS and \
                    not imgui.get_io().want_text_input:
                glfw.set_window_should_close(window, True)
        glfw.set_key_callback(self.handle, on_key)

    def set_font_size(self, size):
        """Scale all text."""
        self.font_size = max(8, round(size))
        imgui_compat.set_font_size(self.font_size, FONT_SIZE)

    def begin_frame(self):
        super().begin_frame()
        self.renderer.process_inputs()
        imgui.new_frame()

    def render_gui(self):
        imgui.render()
        self.renderer.render(imgui.get_draw_data())

    def end_frame(self):
        super().end_frame()

    def destroy(self):
        self.renderer.shutdown()
        implot.destroy_context()
        imgui_compat.destroy_context(self.context)
        super().destroy()

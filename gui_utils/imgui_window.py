"""Dear ImGui (imgui-bundle) on a GlfwWindow: context, input, fonts shipped with the package."""
import os

import glfw
import imgui_bundle
from imgui_bundle import imgui, implot
from imgui_bundle.python_backends.glfw_backend import GlfwRenderer

from .window import GlfwWindow

FONT_PATH = os.path.join(os.path.dirname(imgui_bundle.__file__), 'assets', 'fonts', 'Roboto',
                         'Roboto-Regular.ttf')


class ImguiWindow(GlfwWindow):
    def __init__(self, title, width, height, headless=False, vsync=False, close_on_esc=True):
        super().__init__(title, width, height, headless=headless, vsync=vsync)
        self.context = imgui.create_context()
        implot.create_context()
        io = imgui.get_io()
        io.set_ini_filename(None)                  # no imgui.ini dropped in the working directory
        io.config_drag_click_to_input_text = True
        io.fonts.add_font_from_file_ttf(FONT_PATH, 16)   # bundled font: nothing is downloaded
        self.renderer = GlfwRenderer(self.handle)
        if close_on_esc:
            self._chain_escape()
        imgui.style_colors_dark()
        style = imgui.get_style()
        style.frame_rounding = style.grab_rounding = style.popup_rounding = 3
        style.window_rounding = 0
        self.font_size = 16

    def _chain_escape(self):
        renderer_callback = self.renderer.keyboard_callback

        def on_key(window, key, scancode, action, mods):
            renderer_callback(window, key, scancode, action, mods)
            if key == glfw.KEY_ESCAPE and action == glfw.PRESS and \
                    not imgui.get_io().want_text_input:
                glfw.set_window_should_close(window, True)
        glfw.set_key_callback(self.handle, on_key)

    def set_font_size(self, size):
        """Scale all text (Dear ImGui >= 1.92 rasterises fonts at any size on demand)."""
        self.font_size = max(8, round(size))
        imgui.get_style().font_size_base = self.font_size

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
        imgui.destroy_context(self.context)
        super().destroy()

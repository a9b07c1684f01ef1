"""The line at the top of the pane when a render server renders: which machine (host, device,
GPU) and the round-trip time, or 'disconnected' with the reason and a Reconnect button that
keeps every setting."""
from imgui_bundle import imgui

from .gui_helpers import button

class RemoteWidget:
    def __init__(self, viz):
        self.viz = viz

    def __call__(self):
        viz = self.viz
        if not viz.remote:
            return
        link = viz.link
        if link.disconnected:
            imgui.text_colored(imgui.ImVec4(1, 0.4, 0.4, 1), 'Render server disconnected')
            imgui.same_line()
            if button('Reconnect', width=viz.button_w * 1.5):
                link.reconnect()
            imgui.text_wrapped(link.disconnected)
        else:
            imgui.text_wrapped(f'Rendering on {link.describe()}')
        imgui.separator()

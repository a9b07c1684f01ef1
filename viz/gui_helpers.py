"""Small ImGui helpers shared by the widgets."""
from contextlib import contextmanager

from imgui_bundle import imgui


def label(text, width):
    """A left-aligned row label of fixed width, then the controls on the same line."""
    imgui.align_text_to_frame_padding()
    imgui.text(text)
    imgui.same_line(width)


@contextmanager
def disabled(when):
    if when:
        imgui.begin_disabled()
    try:
        yield
    finally:
        if when:
            imgui.end_disabled()


def button(text, enabled=True, width=0):
    with disabled(not enabled):
        return imgui.button(text, imgui.ImVec2(width, 0))


def tooltip(text):
    if imgui.is_item_hovered():
        imgui.set_tooltip(text)

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


def yaw_pitch_row(viz, title, key, yaw, pitch, tip=None):
    """Row 'title: [yaw, pitch] Snap Reset' -> (yaw, pitch, reset clicked)."""
    label(title, viz.label_w)
    imgui.set_next_item_width(viz.field_w)
    changed, values = imgui.drag_float2(f'##{key}', [yaw, pitch], 0.01, -3.2, 3.2, '%+.2f')
    if tip:
        tooltip(tip)
    if changed:
        yaw, pitch = values
    imgui.same_line()
    if button(f'Snap##{key}', width=viz.button_w):
        yaw, pitch = round(yaw, 1), round(pitch, 1)
    imgui.same_line()
    return yaw, pitch, button(f'Reset##{key}', width=viz.button_w)

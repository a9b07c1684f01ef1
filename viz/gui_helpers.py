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


ERROR_COLOUR = imgui.ImVec4(1, 0.4, 0.4, 1)


def error_text(text):
    """An error in the pane, wrapped at the pane's edge instead of cut off."""
    imgui.push_style_color(imgui.Col_.text, ERROR_COLOUR)
    imgui.text_wrapped(text)
    imgui.pop_style_color()


def wrap(text, width, measure=None):
    """`text` as lines no wider than `width` pixels (words kept whole unless a word alone is
    wider); measure(text) -> pixels, ImGui's current font by default."""
    measure = measure or (lambda t: imgui.calc_text_size(t).x)
    lines = []
    for paragraph in str(text).splitlines() or ['']:
        line = ''
        for word in paragraph.split(' '):
            candidate = f'{line} {word}' if line else word
            if measure(candidate) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
            while measure(line) > width and len(line) > 1:   # one word wider than the line
                cut = next(i for i in range(len(line), 0, -1) if measure(line[:i]) <= width
                           or i == 1)
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


def centred_text(draw, x, y, w, h, colour, text, anchor=0.5, margin=0):
    """`text` wrapped to the box (x, y, w, h) less `margin`, each line centred; the block sits
    at `anchor` of the box's height (0.5 the middle, 1 the bottom)."""
    lines = wrap(text, max(w - 2 * margin, 1))
    line_h = imgui.get_text_line_height_with_spacing()
    top = y + margin + (h - 2 * margin - line_h * len(lines)) * anchor
    for i, line in enumerate(lines):
        width = imgui.calc_text_size(line).x
        draw.add_text(imgui.ImVec2(x + (w - width) / 2, top + i * line_h), colour, line)


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
    changed, values = imgui.drag_float2(f'##{key}', [yaw, pitch], 0.01, -3.5, 3.5, '%+.2f')
    if tip:
        tooltip(tip)
    if changed:
        yaw, pitch = values
    imgui.same_line()
    if button(f'Snap##{key}', width=viz.button_w):
        yaw, pitch = round(yaw, 1), round(pitch, 1)
    imgui.same_line()
    return yaw, pitch, button(f'Reset##{key}', width=viz.button_w)

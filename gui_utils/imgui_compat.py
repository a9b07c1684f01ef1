"""The few Dear ImGui calls that differ between imgui-bundle 1.93 (Dear ImGui 1.92, Python 3.11+)
and 1.5.2 (Dear ImGui 1.90, the newest release with a Python 3.10 wheel), in one place."""
from imgui_bundle import imgui

# Dear ImGui 1.92 passes textures as ImTextureRef and rasterises fonts at any size on demand.
IMGUI_192 = hasattr(imgui, 'ImTextureRef')

# Child window with a border (1.92 renamed the flag).
CHILD_BORDERS = imgui.ChildFlags_.borders if IMGUI_192 else imgui.ChildFlags_.border
# The last frame number of the contexts this process has destroyed (1.90).
_frames_before = 0


def create_context():
    """A new Dear ImGui context. On 1.90 its frame numbers go on from the earlier contexts' of
    this process: imgui-bundle 1.5.2 looks for repeated widget ids within a frame in one cache for
    the whole process, emptied when the frame number changes, so a new context's frame 1 after an
    earlier context's last frame 1 (the tests open a viewer per test) saw its own ids as repeats."""
    context = imgui.create_context()
    if not IMGUI_192:
        context.frame_count = context.frame_count_ended = context.frame_count_rendered = \
            context.frame_count_platform_ended = _frames_before
    return context


def destroy_context(context):
    global _frames_before
    if not IMGUI_192:
        _frames_before = max(_frames_before, context.frame_count)
    imgui.destroy_context(context)


def texture(texture_id):
    """What imgui.image and ImDrawList.add_image take for a GL texture id."""
    return imgui.ImTextureRef(texture_id) if IMGUI_192 else texture_id


def no_ini_file(io):
    """No imgui.ini dropped in the working directory (1.90's binding takes no None: an empty name
    never opens)."""
    io.set_ini_filename(None if IMGUI_192 else '')


def set_font_size(size, loaded_size):
    """Scale all text to `size` pixels: 1.92 rasterises the font at that size, 1.90 scales the
    font loaded at `loaded_size`."""
    if IMGUI_192:
        imgui.get_style().font_size_base = size
    else:
        imgui.get_io().font_global_scale = size / loaded_size

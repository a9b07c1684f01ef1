"""gui_utils/imgui_compat.py on both Dear ImGui generations it serves: 1.92 (imgui-bundle 1.93,
Python 3.11+) and 1.90 (imgui-bundle 1.5.2 on Python 3.10), each simulated with a stand-in module
(the installed one is the other answer on one of them; the GUI tests run on the real one)."""
import importlib.util
import os
import sys
import types

import imgui_bundle
import pytest

from conftest import REPO


class _Recorder:
    def __init__(self, **attributes):
        self.__dict__.update(attributes)

    def set_ini_filename(self, name):
        self.ini_filename = name


def fake_imgui(generation):
    io, style = _Recorder(font_global_scale=1.0), _Recorder()
    imgui = types.SimpleNamespace(get_io=lambda: io, get_style=lambda: style, destroyed=[],
                                  create_context=lambda: _Recorder(frame_count=0))
    imgui.destroy_context = imgui.destroyed.append
    if generation == '1.92':
        imgui.ImTextureRef = lambda texture_id: ('ref', texture_id)
        imgui.ChildFlags_ = types.SimpleNamespace(borders='borders')
    else:
        imgui.ChildFlags_ = types.SimpleNamespace(border='border')
    return imgui


def load_compat(monkeypatch, imgui):
    monkeypatch.setitem(sys.modules, 'imgui_bundle', types.SimpleNamespace(imgui=imgui))
    spec = importlib.util.spec_from_file_location('imgui_compat_under_test',
                                                  REPO / 'gui_utils' / 'imgui_compat.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('generation', ['1.92', '1.90'])
def test_each_generation_gets_its_own_calls(monkeypatch, generation):
    imgui = fake_imgui(generation)
    compat = load_compat(monkeypatch, imgui)
    io, style = imgui.get_io(), imgui.get_style()
    compat.no_ini_file(io)
    compat.set_font_size(24, 16)
    first = compat.create_context()
    first.frame_count = 7                   # drew 7 frames
    compat.destroy_context(first)
    second = compat.create_context()
    assert imgui.destroyed == [first]
    if generation == '1.92':
        assert compat.IMGUI_192 and compat.texture(7) == ('ref', 7)
        assert compat.CHILD_BORDERS == 'borders' and io.ini_filename is None
        assert style.font_size_base == 24 and io.font_global_scale == 1.0
        assert second.frame_count == 0 and not hasattr(second, 'frame_count_ended')
    else:
        assert not compat.IMGUI_192 and compat.texture(7) == 7
        assert compat.CHILD_BORDERS == 'border' and io.ini_filename == ''
        assert io.font_global_scale == 1.5 and not hasattr(style, 'font_size_base')
        assert second.frame_count == second.frame_count_ended == 7     # numbering goes on


def test_the_installed_imgui_bundle_is_one_of_the_two():
    from gui_utils import imgui_compat
    major_minor = tuple(int(part) for part in imgui_bundle.__version__.split('.')[:2])
    assert major_minor in ((1, 93), (1, 5))
    assert imgui_compat.IMGUI_192 == (major_minor == (1, 93))


def test_contexts_one_after_another_draw_the_same_widgets():
    """The tests open a viewer per test: each context's first frame draws the ids the previous
    context's last frame drew (on 1.90 this raised 'widgets names/ids must be distinct' when that
    last frame was frame 1)."""
    from imgui_bundle import imgui

    from gui_utils import imgui_compat
    for _ in range(3):
        context = imgui_compat.create_context()
        io = imgui.get_io()
        imgui_compat.no_ini_file(io)
        io.display_size = imgui.ImVec2(200, 100)
        if imgui_compat.IMGUI_192:
            io.backend_flags |= imgui.BackendFlags_.renderer_has_textures
        else:
            io.fonts.get_tex_data_as_rgba32()
        imgui.new_frame()
        imgui.begin('window')
        imgui.button('the same id')
        imgui.end()
        imgui.render()
        imgui_compat.destroy_context(context)


def test_headless_keeps_glfws_own_library_whatever_imgui_bundle_points_at():
    """Importing imgui-bundle points pip's glfw at imgui-bundle's own GLFW (PYGLFW_LIBRARY); in
    1.5.2, the one for Python 3.10, that is GLFW 3.3, which has no null platform. After
    configure(True), glfw keeps the library it bundles, whichever imgui-bundle is installed."""
    import subprocess
    code = ('from gui_utils import platform\n'
            'platform.configure(True)\n'
            'import imgui_bundle, glfw, glfw.library\n'
            'print(glfw.library.glfw._name, glfw.get_version() >= (3, 4))\n')
    env = {k: v for k, v in os.environ.items() if k != 'PYGLFW_LIBRARY'}
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert '/glfw/' in out[0] and 'imgui_bundle' not in out[0] and out[1] == 'True', out


def test_headless_window_names_a_glfw_without_null_platform(monkeypatch):
    from gui_utils import window
    monkeypatch.setattr(window.glfw, 'get_version', lambda: (3, 3, 8))
    with pytest.raises(window.WindowError, match=r'needs GLFW 3\.4.*3\.3\.8'):
        window.GlfwWindow('t', 64, 64, headless=True)

"""A GLFW window with an OpenGL 3.3 core context, an FPS limiter and a framebuffer grabber.

With `headless=True` the window is offscreen: GLFW's null platform with an OSMesa context, so
the same drawing code runs on servers and in CI without a display.
"""
import time

import glfw
import numpy as np
from OpenGL import GL


class WindowError(RuntimeError):
    pass


class GlfwWindow:
    def __init__(self, title, width, height, headless=False, vsync=False):
        self.headless = headless
        if headless:
            if glfw.get_version() < (3, 4):
                raise WindowError('--headless needs GLFW 3.4 (its null platform); the GLFW loaded '
                                  'is %d.%d.%d: call gui_utils.platform.configure(True) before '
                                  'importing imgui_bundle' % glfw.get_version())
            glfw.init_hint(glfw.PLATFORM, glfw.PLATFORM_NULL)
        if not glfw.init():
            raise WindowError('GLFW could not initialise (no display or GL driver)')
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        if headless:
            glfw.window_hint(glfw.CONTEXT_CREATION_API, glfw.OSMESA_CONTEXT_API)
            glfw.window_hint(glfw.VISIBLE, False)
        else:
            glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
            width, height = self._fit_to_monitor(width, height)
        self.handle = glfw.create_window(width, height, title, None, None)
        if not self.handle:
            glfw.terminate()
            raise WindowError('could not create an OpenGL 3.3 window'
                              + (' (is libosmesa6 installed?)' if headless else ''))
        glfw.make_context_current(self.handle)
        self.vsync = vsync
        glfw.swap_interval(1 if vsync else 0)
        self.fps_limit = 60
        self.frame_delta = 0.0
        self._frame_start = None
        self._drop_paths = []
        glfw.set_drop_callback(self.handle, lambda _w, paths: self._drop_paths.extend(paths))

    @staticmethod
    def _fit_to_monitor(width, height):
        monitor = glfw.get_primary_monitor()
        if not monitor:
            return width, height
        _, _, work_w, work_h = glfw.get_monitor_workarea(monitor)
        return min(width, max(work_w, 320)), min(height, max(work_h - 40, 240))

    @property
    def should_close(self):
        return glfw.window_should_close(self.handle)

    def close(self):
        glfw.set_window_should_close(self.handle, True)

    def set_vsync(self, on):
        if on != self.vsync:
            self.vsync = on
            glfw.swap_interval(1 if on else 0)

    @property
    def content_size(self):
        return glfw.get_window_size(self.handle)

    @property
    def framebuffer_size(self):
        return glfw.get_framebuffer_size(self.handle)

    def pop_drop_paths(self):
        paths, self._drop_paths = self._drop_paths, []
        return paths

    def begin_frame(self):
        """Wait for the FPS limit, poll events, clear."""
        now = time.perf_counter()
        if self._frame_start is not None and not self.vsync and not self.headless:
            remaining = 1 / max(self.fps_limit, 1) - (now - self._frame_start)
            if remaining > 0:
                time.sleep(remaining)
            now = time.perf_counter()
        if self._frame_start is not None:
            self.frame_delta = now - self._frame_start
        self._frame_start = now
        glfw.poll_events()
        w, h = self.framebuffer_size
        GL.glViewport(0, 0, w, h)
        GL.glClearColor(0, 0, 0, 1)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)

    def end_frame(self):
        glfw.swap_buffers(self.handle)

    def grab_framebuffer(self):
        """The back buffer as uint8 [H, W, 3], top row first (call before end_frame)."""
        w, h = self.framebuffer_size
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        data = GL.glReadPixels(0, 0, w, h, GL.GL_RGB, GL.GL_UNSIGNED_BYTE)
        return np.frombuffer(data, np.uint8).reshape(h, w, 3)[::-1].copy()

    def destroy(self):
        if self.handle:
            glfw.destroy_window(self.handle)
            self.handle = None
        glfw.terminate()

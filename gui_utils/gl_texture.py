"""A GL texture fed with rendered frames: CUDA-GL interop on a GPU, a pixel-buffer upload elsewhere.

`path` and `path_reason` say which way frames travel, for the Performance panel.
"""
import ctypes

import numpy as np
from OpenGL import GL

from .cuda_interop import CudaTextureWriter, interop_problem


class Texture:
    def __init__(self):
        self.id = int(GL.glGenTextures(1))
        self._pbo = int(GL.glGenBuffers(1))
        self.width = self.height = 0
        self._writer = None
        self._interop_problem = None   # decided on the first CUDA frame
        self.path = 'none yet'
        self.path_reason = ''

    def update(self, image):
        """image: uint8 [H, W, 3] torch tensor (any device) or numpy array."""
        h, w = image.shape[:2]
        if (w, h) != (self.width, self.height):
            self._allocate(w, h)
        if getattr(image, 'is_cuda', False) and self._try_interop(image):
            return
        self._upload(image)

    def _allocate(self, w, h):
        self._release_writer()
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.id)
        GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, w, h, 0, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE,
                        None)
        for name in (GL.GL_TEXTURE_MIN_FILTER, GL.GL_TEXTURE_MAG_FILTER):
            GL.glTexParameteri(GL.GL_TEXTURE_2D, name, GL.GL_LINEAR)
        for name in (GL.GL_TEXTURE_WRAP_S, GL.GL_TEXTURE_WRAP_T):
            GL.glTexParameteri(GL.GL_TEXTURE_2D, name, GL.GL_CLAMP_TO_EDGE)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        self.width, self.height = w, h

    def _try_interop(self, image):
        if self._interop_problem is None:
            self._interop_problem = interop_problem() or ''
        if self._interop_problem:
            self.path_reason = self._interop_problem
            return False
        try:
            import torch
            if self._writer is None:
                self._writer = CudaTextureWriter(self.id)
            alpha = torch.full_like(image[..., :1], 255)
            self._writer.write(torch.cat([image, alpha], dim=-1).contiguous())
            self.path, self.path_reason = 'CUDA-GL interop', 'frames stay on the GPU'
            return True
        except Exception as e:  # first failure: fall back for good, and say why
            self._interop_problem = f'interop failed: {e}'.splitlines()[0]
            self._release_writer()
            self.path_reason = self._interop_problem
            return False

    def _upload(self, image):
        data = np.ascontiguousarray(image.cpu().numpy() if hasattr(image, 'cpu') else image)
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, self._pbo)
        GL.glBufferData(GL.GL_PIXEL_UNPACK_BUFFER, data.nbytes, data, GL.GL_STREAM_DRAW)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.id)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, self.width, self.height, GL.GL_RGB,
                           GL.GL_UNSIGNED_BYTE, ctypes.c_void_p(0))
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, 0)
        self.path = 'pixel-buffer upload'
        if not self.path_reason:
            self.path_reason = 'frames rendered on the CPU'

    def _release_writer(self):
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def delete(self):
        self._release_writer()
        GL.glDeleteTextures([self.id])
        GL.glDeleteBuffers(1, [self._pbo])

"""CUDA-GL interop: copy a CUDA tensor straight into a GL texture (cuda-bindings).

Optional: `cuda-bindings` is installed only where CUDA exists. Anything that fails here makes
the texture fall back to a pixel-buffer upload, with the reason shown in the Performance panel.
"""
GL_TEXTURE_2D = 0x0DE1


def interop_problem():
    """Why interop cannot be used in this process, or None."""
    try:
        import torch
        if not torch.cuda.is_available():
            return 'no CUDA device'
    except Exception as e:
        return f'CUDA unavailable ({type(e).__name__})'
    try:
        from cuda.bindings import runtime  # noqa: F401
    except Exception:
        return "the 'cuda-bindings' package is not installed"
    return None


def _check(result, what):
    err = result[0]
    if int(err) != 0:
        raise RuntimeError(f'{what} failed ({err})')
    return result[1] if len(result) > 1 else None


class CudaTextureWriter:
    """Registers one GL texture (RGBA8) with CUDA and writes uint8 [H, W, 4] CUDA tensors to it."""

    def __init__(self, texture_id):
        from cuda.bindings import runtime as cudart
        self._rt = cudart
        flags = cudart.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsWriteDiscard
        self._resource = _check(cudart.cudaGraphicsGLRegisterImage(texture_id, GL_TEXTURE_2D, flags),
                                'cudaGraphicsGLRegisterImage')

    def write(self, rgba):
        import torch
        rt = self._rt
        stream = torch.cuda.current_stream().cuda_stream
        h, w, _ = rgba.shape
        _check(rt.cudaGraphicsMapResources(1, self._resource, stream), 'cudaGraphicsMapResources')
        try:
            array = _check(rt.cudaGraphicsSubResourceGetMappedArray(self._resource, 0, 0),
                           'cudaGraphicsSubResourceGetMappedArray')
            _check(rt.cudaMemcpy2DToArrayAsync(array, 0, 0, rgba.data_ptr(), w * 4, w * 4, h,
                                               rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream),
                   'cudaMemcpy2DToArrayAsync')
        finally:
            _check(rt.cudaGraphicsUnmapResources(1, self._resource, stream),
                   'cudaGraphicsUnmapResources')

    def release(self):
        if self._resource is not None:
            self._rt.cudaGraphicsUnregisterResource(self._resource)
            self._resource = None

"""The viewer's frames without a window: RenderArgs (everything a frame depends on) -> a
RenderResult, made by FrameRenderer. The local viewer's render worker and the render server
(eg3d_runtime.commands.serve) both use them, so a frame is made the same way wherever it renders."""

"""Window, ImGui glue and GL textures; no GAN code here.

Import `gui_utils.platform` and call `configure(headless)` before anything imports OpenGL or
imgui_bundle.
"""

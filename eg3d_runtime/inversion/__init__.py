"""Photo inversion, one idea per module: targets (the picture and its camera, with one-line
errors), losses (pixel + multi-scale SSIM, or LPIPS from given weights), optimise (the latent,
the camera, pivotal tuning). The command and the viewer widget call eg3d_runtime.invert."""

"""The fast inference path's pieces: the same networks as networks/ and rendering/ (the
reference, which training and `faithful=True` use), rendered with layers folded for a w (fold,
blocks), convolutions with fixed weights (conv) in Winograd or per-phase form (kernel_forms), a
tri-plane table and ray marching (render), worker threads (parallel) and CUDA graphs (graphs),
in the arithmetic chosen by precision. backbone, superresolution and frame put them together
into the stages of a frame; the engine session (eg3d_runtime.engine) owns their caches and is
the only caller."""

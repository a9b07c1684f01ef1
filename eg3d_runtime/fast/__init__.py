"""The fast inference path: the same networks as networks/ and rendering/ (the reference,
which training and `faithful=True` use), rendered with folded weights, Winograd convolutions,
a tri-plane table, worker threads and CUDA graphs. path.py is the entry point; the others are
its parts."""

"""Intermediate tensors for the layer viewer: forward hooks that exist only during one render."""
from contextlib import contextmanager

import torch


class LayerRecord:
    def __init__(self, wanted):
        self.wanted = wanted
        self.layers = []          # (name, shape) of every image-like output, in execution order
        self.captured = None      # [C, H, W] of the wanted layer


@contextmanager
def capture_layers(module, wanted=None):
    """Record every 4-D output ([N, C, H, W]; 5-D tri-planes averaged to 4-D) of `module`'s
    submodules; keep the one named `wanted`. All hooks are removed on exit."""
    record = LayerRecord(wanted)
    seen = {}

    def hook(name):
        def on_output(_module, _inputs, output):
            outputs = output if isinstance(output, (tuple, list)) else (output,)
            for idx, out in enumerate(outputs):
                if not torch.is_tensor(out) or out.ndim not in (4, 5):
                    continue
                if out.ndim == 5:
                    out = out.mean(2)
                label = name if len(outputs) == 1 else f'{name}:{idx}'
                seen[label] = seen.get(label, 0) + 1
                if seen[label] > 1:
                    label = f'{label}_{seen[label]}'
                record.layers.append((label, tuple(out.shape[1:])))
                if label == wanted:
                    record.captured = out[0].detach().float()
        return on_output

    handles = [m.register_forward_hook(hook(name)) for name, m in module.named_modules() if name]
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()


def layer_to_image(x, base_channel=0, rgb=False, normalize=False, gain_db=0.0):
    """[C, H, W] activations -> uint8 [H, W, 3]: one channel as grey or three as RGB."""
    count = 3 if rgb and x.shape[0] >= 3 else 1
    base = min(max(base_channel, 0), x.shape[0] - count)
    x = x[base:base + count]
    if normalize:
        x = x / x.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-8)
    x = x * (10 ** (gain_db / 20))
    image = (x * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    return image.expand(-1, -1, 3).contiguous() if count == 1 else image.contiguous()

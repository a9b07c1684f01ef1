"""A StyleGAN2 layer folded for one w: when w is known, a modulated convolution is an ordinary
convolution whose weights are `weight * styles`, demodulated, times the activation gain; bias,
noise, leaky ReLU and clamp form its epilogue (conv.FixedConv runs it). Also the cheap identity
of a module's weights that says when something folded from them is stale."""
import weakref

import torch

from .conv import FixedConv

_WEIGHT_SQUARES = weakref.WeakKeyDictionary()     # layer -> ((data_ptr, version), [Co, Ci])


def _weight_squares(layer):
    """[Co, Ci]: the sum of the squared 3x3 taps of each kernel, computed once per weight tensor
    and version, so that a w's demodulation is a matrix-vector product: sum over i and taps of
    (W_oik s_i)^2 = sum_i s_i^2 sum_k W_oik^2."""
    weight = layer.weight
    key = (weight.data_ptr(), weight._version)
    hit = _WEIGHT_SQUARES.get(layer)
    if hit is None or hit[0] != key:
        hit = (key, weight.detach().float().square().sum(dim=[2, 3]))
        _WEIGHT_SQUARES[layer] = hit
    return hit[1]


def fold_layer(layer, w, noise_mode, method='direct', dtype=torch.float32):
    """A `SynthesisLayer` and one w [w_dim] -> FixedConv with modulation, demodulation and the
    activation gain folded into plain weights (one pass over the weights: all three are one
    factor per input and output channel)."""
    styles = layer.affine(w.unsqueeze(0))[0].float()
    gain = layer.act_gain
    demod = (_weight_squares(layer) @ styles.square() + 1e-8).rsqrt()
    weight = layer.weight.float() * (demod[:, None] * gain * styles)[:, :, None, None]
    bias = layer.bias.float() * gain
    noise, strength = None, 0.0
    if layer.use_noise and noise_mode == 'const':
        noise = (layer.noise_const.float() * (layer.noise_strength.float() * gain))
    elif layer.use_noise and noise_mode == 'random':
        noise, strength = 'random', float(layer.noise_strength.detach()) * gain
    kind = 'up3' if layer.up > 1 else 'conv3'
    if weight.shape[-1] != 3:
        raise ValueError('fast path supports 3x3 synthesis layers only')
    return FixedConv(kind, weight, bias, lrelu=layer.activation == 'lrelu', clamp=layer.conv_clamp,
                     noise=noise, noise_strength=strength, method=method, dtype=dtype,
                     resample_filter=layer.resample_filter)


def fold_torgb(layer, w, dtype=torch.float32):
    styles = layer.affine(w.unsqueeze(0))[0].float() * layer.weight_gain
    weight = layer.weight.float() * styles.reshape(1, -1, 1, 1)
    return FixedConv('conv1', weight, layer.bias.float(), lrelu=False, clamp=layer.conv_clamp,
                     dtype=dtype)


def params_signature(module):
    """Cheap identity of a module's weights: changes when any tensor is replaced or modified."""
    return tuple((t.data_ptr(), t._version, t.device.type) for t in
                 list(module.parameters()) + list(module.buffers()))


__all__ = ['fold_layer', 'fold_torgb', 'params_signature']

"""OSGDecoder: the small MLP turning averaged tri-plane features into density and colour features."""
import math

import torch
from torch import nn

from .stylegan2 import FullyConnectedLayer


DECODER_ACTIVATIONS = ('sigmoid', 'lrelu', 'none')


class OSGDecoder(nn.Module):
    """`options['decoder_activation']` (PanoHead's option; EG3D always 'sigmoid') is what the
    colour features go through: EG3D's scaled sigmoid, StyleGAN2's leaky ReLU, or nothing."""

    def __init__(self, n_features, options):
        super().__init__()
        self.hidden_dim = 64
        self.activation = options.get('decoder_activation', 'sigmoid')
        self.net = nn.Sequential(
            FullyConnectedLayer(n_features, self.hidden_dim, lr_multiplier=options['decoder_lr_mul']),
            nn.Softplus(),
            FullyConnectedLayer(self.hidden_dim, 1 + options['decoder_output_dim'],
                                lr_multiplier=options['decoder_lr_mul']))

    def forward(self, sampled_features, ray_directions=None):
        """[N, 3, M, C] features -> {'sigma': raw density [N, M, 1], 'rgb': [N, M, 32]}."""
        x = sampled_features.mean(1)
        n, m, c = x.shape
        x = self.net(x.reshape(n * m, c)).reshape(n, m, -1)
        return {'rgb': activate_colours(x[..., 1:], self.activation), 'sigma': x[..., 0:1]}


def activate_colours(x, activation):
    """The decoder's colour activation (see OSGDecoder)."""
    if activation == 'sigmoid':
        return torch.sigmoid(x) * (1 + 2 * 0.001) - 0.001
    if activation == 'lrelu':
        return torch.nn.functional.leaky_relu(x, 0.2) * math.sqrt(2)
    return x

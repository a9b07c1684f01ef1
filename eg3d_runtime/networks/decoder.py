"""OSGDecoder: the small MLP turning averaged tri-plane features into density and colour features."""
import torch
from torch import nn

from .stylegan2 import FullyConnectedLayer


class OSGDecoder(nn.Module):
    def __init__(self, n_features, options):
        super().__init__()
        self.hidden_dim = 64
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
        rgb = torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001
        return {'rgb': rgb, 'sigma': x[..., 0:1]}

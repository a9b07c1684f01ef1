"""Distillation of the procedural renderer into the generator (`train --distill FIGURES`): a
faster route than GAN training to a demo network whose seeds are crisp toy figures that turn in
3D.

Latent seed k (z = views.latent(k), the viewer's seed k) stands for one toy figure, `figure(k)`,
for k < FIGURES. Each training image is one of those figures seen from a random data camera,
rendered at the network's resolution in the DataLoader workers; G, conditioned on that camera's
label as usual, learns to reproduce it (L1 on `image` and on `image_raw` against the target
resized to the neural rendering resolution, plus L1 on image gradients, which keeps edges sharp),
optionally with the adversarial loss of EG3DLoss on top (`--distill_adv`). Run directory, ticks,
snapshots, stats and grids are TrainingLoop's, so the Trainer tab shows a distillation run like
any other.
"""
import numpy as np
import torch

from .. import procedural, views
from . import stats
from .loop import TrainingLoop
from .loss import EG3DLoss, resize

FIGURE_STREAM = 15          # figure k comes from default_rng([FIGURE_STREAM, k])
VIEWS_PER_FIGURE = 4096     # cameras per figure in one pass over the dataset
LABEL_STD_ITEMS = 1024      # labels the label std (G's dataset_label_std) is estimated from


def figure(seed):
    """The toy figure that latent seed `seed` stands for (the same in every run)."""
    return procedural.random_object(np.random.default_rng([FIGURE_STREAM, seed]))


def training_set_kwargs(figures, resolution, random_seed, supersample=2):
    """The run's `training_set_kwargs` (printed, stored in training_options.json and in the
    snapshots like an image dataset's)."""
    return dict(class_name='eg3d_runtime.training.distill.FigureDataset',
                path=f'figures{figures}', figures=figures, resolution=resolution,
                use_labels=True, max_size=figures * VIEWS_PER_FIGURE, xflip=False,
                random_seed=random_seed, supersample=supersample)


class FigureDataset(torch.utils.data.Dataset):
    """Item i: figure i % figures from camera i (seeded by random_seed and i), rendered on
    access (procedural.render_label's `supersample`), as (uint8 image [3, R, R], label [25],
    figure index)."""

    def __init__(self, figures, resolution, random_seed, supersample=2):
        self.figures, self.resolution, self.random_seed = figures, resolution, random_seed
        self.supersample = supersample
        self.num_channels, self.label_dim = 3, 25
        self.image_shape, self.label_shape = [3, resolution, resolution], [25]

    @classmethod
    def from_kwargs(cls, kwargs):
        """The dataset a run's `training_set_kwargs` describe (runs made before
        --distill_supersample have none: 2)."""
        return cls(kwargs['figures'], kwargs['resolution'], kwargs['random_seed'],
                   kwargs.get('supersample', 2))

    def __len__(self):
        return self.figures * VIEWS_PER_FIGURE

    def get_label(self, index):
        return procedural.random_camera(np.random.default_rng([self.random_seed, index]))

    def get_label_std(self):
        return np.stack([self.get_label(i) for i in range(LABEL_STD_ITEMS)]).std(0)

    def render(self, k, label):
        """uint8 image [3, R, R] of figure k from the camera `label`."""
        image = procedural.render_label(figure(k), label, self.resolution, self.supersample)
        return image.transpose(2, 0, 1).copy()

    def __getitem__(self, index):
        k, label = index % self.figures, self.get_label(index)
        return self.render(k, label), label, k


def image_gradients(images):
    """Horizontal and vertical neighbour differences of images [N, C, H, W]."""
    return images[..., :, 1:] - images[..., :, :-1], images[..., 1:, :] - images[..., :-1, :]


def reconstruction_losses(fake, real_img):
    """{'l1', 'edges'} per sample [N]: L1 of `image` against the target and of `image_raw`
    against it resized to the raw resolution; L1 of the image gradients."""
    raw_target = resize(real_img, fake['image_raw'].shape[-1])
    l1 = ((fake['image'] - real_img).abs().mean([1, 2, 3])
          + (fake['image_raw'] - raw_target).abs().mean([1, 2, 3]))
    edges = sum((f - r).abs().mean([1, 2, 3])
                for f, r in zip(image_gradients(fake['image']), image_gradients(real_img)))
    return {'l1': l1, 'edges': edges}


class DistillLoss(EG3DLoss):
    """EG3DLoss whose generator objective is reconstruction of the renders (real_img, drawn
    with gen_z's figures from gen_c's cameras) plus `adversarial_weight` times the adversarial
    loss; the discriminator phases run only when that weight is above 0. Density
    regularisation is EG3DLoss's."""

    def __init__(self, device, G, D, augment_pipe=None, adversarial_weight=0.0, **kwargs):
        super().__init__(device, G, D, augment_pipe=augment_pipe, **kwargs)
        self.adversarial_weight = adversarial_weight

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        if phase in ('Gmain', 'Gboth'):
            self._reconstruct(real_img, gen_z, gen_c, gain, cur_nimg)
            phase = 'Greg' if phase == 'Gboth' else None
        elif phase.startswith('D') and self.adversarial_weight == 0:
            phase = None
        if phase is not None:
            super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg)

    def _reconstruct(self, real_img, gen_z, gen_c, gain, cur_nimg):
        s = self.schedules(cur_nimg)
        # w_avg, the centre of truncation (psi < 1 in the viewer), is tracked in the phase that
        # maps the latents with update_emas: the D phase when it runs, otherwise this one.
        fake = self.run_G(gen_z, gen_c, s['gpc_swap_prob'], s['neural_rendering_resolution'],
                          update_emas=self.adversarial_weight == 0)
        losses = reconstruction_losses(fake, real_img)
        for name, value in losses.items():
            stats.report('Loss/distill/' + name, value)
        loss = losses['l1'] + losses['edges']
        if self.adversarial_weight > 0:
            logits = self.run_D(fake, gen_c, s['blur_sigma'])
            stats.report('Loss/scores/fake', logits)
            stats.report('Loss/signs/fake', logits.sign())
            loss = loss + self.adversarial_weight * torch.nn.functional.softplus(-logits).flatten()
        stats.report('Loss/G/loss', loss)
        loss.mean().mul(gain).backward()


class DistillLoop(TrainingLoop):
    """TrainingLoop on a FigureDataset: each batch's latents are its figures' seeds and its
    cameras the renders' cameras; the grids show figures 0.. (rows) across the yaw range."""

    def _open_dataset(self, kwargs):
        return FigureDataset.from_kwargs(kwargs)

    def _make_loss(self, kwargs):
        return DistillLoss(self.device, self.G, self.D, augment_pipe=self.augment_pipe,
                           adversarial_weight=self.o['distill']['adversarial_weight'], **kwargs)

    def _next_batch(self):
        images, labels, figures = next(self.loader)
        self._batch_z = torch.cat([views.latent(int(k), self.G.z_dim) for k in figures])
        self._batch_c = labels
        return self._on_device(images, labels)

    def _generator_inputs(self, batch_idx):
        z = self._batch_z.to(self.device).split(self.batch_gpu)
        c = self._batch_c.to(self.device).split(self.batch_gpu)
        return [z] * len(self.phases), [c] * len(self.phases)

    def _snapshot_grid(self):
        gw, gh = self.o.get('image_grid_size') or (8, 8)
        labels = np.stack([procedural.orbit_label(yaw) for yaw in
                           np.linspace(-procedural.YAW_RANGE, procedural.YAW_RANGE, gw)] * gh)
        figures = np.repeat(np.arange(gh), gw) % self.dataset.figures
        images = np.stack([self.dataset.render(k, c) for k, c in zip(figures, labels)])
        z = torch.cat([views.latent(int(k), self.G.z_dim) for k in figures])
        return (gw, gh), images, labels, z

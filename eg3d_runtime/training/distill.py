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

Images teach the shapes slowly: a step sees each figure from one side, through 32 samples a ray
and a super-resolution. The first `--distill_volume_kimg` kimg therefore supervise the radiance
field itself: the density and colour the decoder gives at points around each figure against
the figure's own occupancy and shading (procedural.volume_samples), about 8x cheaper a step on
a CPU and every side at once. The image loss then trains the super-resolution and refines what
the renders show. The `--distill_field_kimg` kimg before the super-resolution stage fit the field
alone to the renders at its own resolution (image_raw, about 3x cheaper a step than the image
loss, which also runs the super-resolution): its sharp outlines are what the super-resolution
builds on. The last `--distill_sr_kimg` kimg train the super-resolution alone, whose sharp
edges take many steps to learn: the field is frozen there, so SR_VIEWS renders of it, made once,
stay exact, and a step costs the super-resolution only (about 4x cheaper than an image step on
a CPU); Adam has momentum there (SR_ADAM_BETAS), and `--distill_sr_edge_weight` makes the
image L1 count more where the sharpness is, next to the targets' edges (edge_band).
"""
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .. import procedural, views
from . import stats
from .loop import TrainingLoop, lazy_regularised
from .loss import EG3DLoss, resize

FIGURE_STREAM = 15          # figure k comes from default_rng([FIGURE_STREAM, k])
VIEWS_PER_FIGURE = 4096     # cameras per figure in one pass over the dataset
LABEL_STD_ITEMS = 1024      # labels the label std (G's dataset_label_std) is estimated from
VOLUME_STREAM = 16          # item i's volume samples come from default_rng([random_seed, 16, i])
VOLUME_POINTS = 8192        # points per figure in a volume step
OCCUPANCY_SOFTNESS = 0.005  # world units: the occupancy target is sigmoid(-sdf / this)
COLOUR_BAND = 0.02          # colour is supervised inside the figure and this far outside it
TRUNCATION_RANGE = (0.6, 1.0)   # psi drawn for half the latents (see DistillLoss._mapping)
SR_VIEWS = 512              # dataset items rendered once for the super-resolution stage
# Adam's betas in the super-resolution stage: with momentum (the official GAN setting has
# beta1 = 0), which sharpened much faster per step when measured (README, Demo checkpoint)
SR_ADAM_BETAS = (0.9, 0.99)
EDGE_STEP = 0.2             # a neighbour difference ([-1, 1] units) above this is an edge


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


def split_batch(batch, size):
    """A NamedTuple of tensors (VolumeSamples, SuperresolutionViews) cut into micro-batches of
    `size` along the first dimension."""
    return [type(batch)(*parts) for parts in zip(*(t.split(size) for t in batch))]


class VolumeSamples(NamedTuple):
    """A batch of volume supervision: world points [N, P, 3], signed distances [N, P] and
    colours [N, P, 3] of each sample's figure."""
    points: torch.Tensor
    sdf: torch.Tensor
    colour: torch.Tensor


class FigureVolumes(torch.utils.data.Dataset):
    """Item i of a FigureDataset as volume supervision instead of an image: (points [P, 3],
    sdf [P], colour [P, 3], label [25], figure index) of figure i % figures."""

    def __init__(self, images, points=None):
        self.images, self.points = images, points or VOLUME_POINTS

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        k = index % self.images.figures
        rng = np.random.default_rng([self.images.random_seed, VOLUME_STREAM, index])
        points, sdf, colour = procedural.volume_samples(figure(k), rng, self.points)
        return points, sdf, colour, self.images.get_label(index), k


class FieldTargets(NamedTuple):
    """A batch of the field stage: the target images [N, 3, H, W] in [-1, 1], which the field's
    image_raw learns at its resolution."""
    image: torch.Tensor


class SuperresolutionViews(NamedTuple):
    """Renders of the frozen field for the super-resolution stage: feature images
    [N, 32, R, R], the last ws [N, 1, w_dim] they were rendered with and the target images
    [N, 3, H, W] in [-1, 1]."""
    features: torch.Tensor
    ws: torch.Tensor
    target: torch.Tensor

    def take(self, index):
        return SuperresolutionViews(*(t[index] for t in self))


def start_superresolution_as_upsampling(G):
    """Zero the super-resolution's toRGB weights, so that a new network's 'image' starts as the
    upsampled 'image_raw' (the blocks' skip path) and the stages after the volume stage only
    have to teach the sharpening, not first undo random colours the volume stage never sees."""
    with torch.no_grad():
        for name, param in G.superresolution.named_parameters():
            if name.endswith('.torgb.weight'):
                param.zero_()


def image_gradients(images):
    """Horizontal and vertical neighbour differences of images [N, C, H, W]."""
    return images[..., :, 1:] - images[..., :, :-1], images[..., 1:, :] - images[..., :-1, :]


def gradient_l1(images, targets):
    """Per sample [N]: L1 of the image gradients of images against those of targets, the term
    that keeps edges sharp."""
    return sum((f - r).abs().mean([1, 2, 3])
               for f, r in zip(image_gradients(images), image_gradients(targets)))


def edge_band(images):
    """[N, 1, H, W] mask of images [N, C, H, W]: 1 on the two pixels either side of an edge (a
    neighbour difference above EDGE_STEP in any channel): silhouettes, eyes, beak, where the toy
    figures' sharpness is and where the super-resolution's L1 error stays largest."""
    dx, dy = (d.abs().amax(1, keepdim=True) > EDGE_STEP for d in image_gradients(images))
    on_edge = (F.pad(dx, (0, 1)) | F.pad(dx, (1, 0)) | F.pad(dy, (0, 0, 0, 1))
               | F.pad(dy, (0, 0, 1, 0)))
    return F.max_pool2d(on_edge.to(images.dtype), 3, stride=1, padding=1)


def reconstruction_losses(fake, real_img):
    """{'l1', 'edges'} per sample [N]: L1 of `image` against the target and of `image_raw`
    against it resized to the raw resolution; L1 of the image gradients."""
    raw_target = resize(real_img, fake['image_raw'].shape[-1])
    l1 = ((fake['image'] - real_img).abs().mean([1, 2, 3])
          + (fake['image_raw'] - raw_target).abs().mean([1, 2, 3]))
    return {'l1': l1, 'edges': gradient_l1(fake['image'], real_img)}


def volume_losses(out, samples, step):
    """{'occupancy', 'colour'} per sample [N] from the decoder's output at the samples' points
    (run_model's 'sigma' [N, P, 1], 'rgb' [N, P, C]): L1 of the opacity of one depth `step`
    (the renderer's coarse spacing) against the occupancy, and L1 of the first three colour
    features against the shading where the figure is."""
    alpha = 1 - torch.exp(-F.softplus(out['sigma'][..., 0] - 1) * step)
    occupancy = torch.sigmoid(-samples.sdf / OCCUPANCY_SOFTNESS)
    weight = torch.sigmoid((COLOUR_BAND - samples.sdf) / OCCUPANCY_SOFTNESS)
    colour = ((out['rgb'][..., :3] - samples.colour).abs().sum(-1) * weight).sum(1) \
        / weight.sum(1).clamp(min=1)
    return {'occupancy': (alpha - occupancy).abs().mean(1), 'colour': colour}


class DistillLoss(EG3DLoss):
    """EG3DLoss whose generator objective is reconstruction of the renders (real_img, drawn
    with gen_z's figures from gen_c's cameras) plus `adversarial_weight` times the adversarial
    loss; the discriminator phases run only when that weight is above 0. In the
    super-resolution stage the image L1 counts `sr_edge_weight` times more in the targets'
    edge_band. Density regularisation is EG3DLoss's."""

    def __init__(self, device, G, D, augment_pipe=None, adversarial_weight=0.0,
                 sr_edge_weight=0.0, **kwargs):
        super().__init__(device, G, D, augment_pipe=augment_pipe, **kwargs)
        self.adversarial_weight = adversarial_weight
        self.sr_edge_weight = sr_edge_weight

    def _mapping(self, z, c_cond, update_emas):
        """The latents' ws, half of them truncated toward w_avg with psi ~ U(TRUNCATION_RANGE):
        the figure stays the same, so psi below 1 in the viewer still shows crisp figures."""
        ws = super()._mapping(z, c_cond, update_emas)
        psi = torch.empty([len(ws), 1, 1], device=ws.device).uniform_(*TRUNCATION_RANGE)
        psi = torch.where(torch.rand_like(psi) < 0.5, psi, torch.ones_like(psi))
        return self.G.backbone.mapping.w_avg.lerp(ws, psi)

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        if isinstance(real_img, VolumeSamples):     # the volume stage: G's main phase only
            if phase in ('Gmain', 'Gboth'):
                self._fit_volume(real_img, gen_z, gen_c, gain, cur_nimg)
            return
        if isinstance(real_img, SuperresolutionViews):   # likewise the super-resolution stage
            if phase in ('Gmain', 'Gboth'):
                self._fit_superresolution(real_img, gain)
            return
        if isinstance(real_img, FieldTargets):           # and the field stage
            if phase in ('Gmain', 'Gboth'):
                self._fit_field(real_img.image, gen_z, gen_c, cur_nimg, gain)
            return
        if phase in ('Gmain', 'Gboth'):
            self._reconstruct(real_img, gen_z, gen_c, gain, cur_nimg)
            phase = 'Greg' if phase == 'Gboth' else None
        elif phase.startswith('D') and self.adversarial_weight == 0:
            phase = None
        if phase is not None:
            super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg)

    def _fit_volume(self, samples, gen_z, gen_c, gain, cur_nimg):
        rk = self.G.rendering_kwargs
        p_swap = self.schedules(cur_nimg)['gpc_swap_prob']
        ws = self._mapping(gen_z, self._conditioning(gen_c, p_swap), update_emas=True)
        out = self.G.sample_mixed(samples.points, torch.zeros_like(samples.points), ws)
        self._backward(volume_losses(
            out, samples, (rk['ray_end'] - rk['ray_start']) / rk['depth_resolution']), gain)

    def _fixed_ws(self, z, c, cur_nimg):
        """ws of latents z, conditioned on cameras c, without gradients: the stages that keep
        the mapping as it is (the super-resolution reads the last w)."""
        p_swap = self.schedules(cur_nimg)['gpc_swap_prob']
        with torch.no_grad():
            return self._mapping(z, self._conditioning(c, p_swap), update_emas=False)

    def _render_field(self, ws, c, cur_nimg):
        """The feature image [N, 32, R, R] of ws from cameras c at the neural rendering
        resolution, with the noise the viewer renders with (const)."""
        nrr = self.schedules(cur_nimg)['neural_rendering_resolution']
        return self.G.neural_rendering(ws, c, nrr, noise_mode='const')[0]

    def render_views(self, z, c, cur_nimg):
        """(feature images, last ws) of latents z from cameras c, rendered without gradients:
        what the super-resolution stage learns from."""
        ws = self._fixed_ws(z, c, cur_nimg)
        with torch.no_grad():
            return self._render_field(ws, c, cur_nimg), ws[:, -1:]

    def _fit_field(self, real_img, gen_z, gen_c, cur_nimg, gain):
        raw = self._render_field(self._fixed_ws(gen_z, gen_c, cur_nimg), gen_c, cur_nimg)[:, :3]
        target = resize(real_img, raw.shape[-1])
        self._backward({'l1': (raw - target).abs().mean([1, 2, 3]),
                        'edges': gradient_l1(raw, target)}, gain)

    def _fit_superresolution(self, views, gain):
        image, raw = self.G.superresolution(
            views.features[:, :3], views.features, views.ws, return_raw=True,
            noise_mode=self.G.rendering_kwargs['superresolution_noise_mode'])
        losses = reconstruction_losses({'image': image, 'image_raw': raw}, views.target)
        if self.sr_edge_weight > 0:
            losses['edge_band'] = self.sr_edge_weight * (
                (image - views.target).abs() * edge_band(views.target)).mean([1, 2, 3])
        self._backward(losses, gain)

    def _reconstruct(self, real_img, gen_z, gen_c, gain, cur_nimg):
        s = self.schedules(cur_nimg)
        # w_avg, the centre of truncation (psi < 1 in the viewer), is tracked in the phase that
        # maps the latents with update_emas: the D phase when it runs, otherwise this one.
        fake = self.run_G(gen_z, gen_c, s['gpc_swap_prob'], s['neural_rendering_resolution'],
                          update_emas=self.adversarial_weight == 0)
        losses = reconstruction_losses(fake, real_img)
        adversarial = 0
        if self.adversarial_weight > 0:
            logits = self.run_D(fake, gen_c, s['blur_sigma'])
            stats.report('Loss/scores/fake', logits)
            stats.report('Loss/signs/fake', logits.sign())
            adversarial = self.adversarial_weight * torch.nn.functional.softplus(-logits).flatten()
        self._backward(losses, gain, adversarial)

    @staticmethod
    def _backward(losses, gain, extra=0):
        """Report each distillation loss, then backpropagate their sum (plus `extra`, the
        adversarial term) as G's loss."""
        for name, value in losses.items():
            stats.report('Loss/distill/' + name, value)
        loss = sum(losses.values()) + extra
        stats.report('Loss/G/loss', loss)
        loss.mean().mul(gain).backward()


def _images(kimg):
    """kimg as a whole number of images, so that the stages switch at the images asked for
    (0.068 - 0.008 kimg is not quite 60 images in floating point)."""
    return round(kimg * 1000)


class DistillLoop(TrainingLoop):
    """TrainingLoop on a FigureDataset: each batch's latents are its figures' seeds and its
    cameras the renders' cameras; the grids show figures 0.. (rows) across the yaw range.
    Until `distill.volume_kimg` the batches are FigureVolumes items instead of images; in the
    `distill.field_kimg` before the super-resolution stage FieldTargets; in the last
    `distill.sr_kimg` random batches of the super-resolution stage's SuperresolutionViews."""

    def __init__(self, run_dir, options, **kwargs):
        d = options['distill']
        total = _images(options['total_kimg'])
        self.volume_nimg = _images(d.get('volume_kimg', 0))
        sr_kimg, field_kimg = d.get('sr_kimg', 0), d.get('field_kimg', 0)
        self.sr_start_nimg = max(self.volume_nimg, total - _images(sr_kimg)) \
            if sr_kimg > 0 else float('inf')
        self.field_start_nimg = max(self.volume_nimg, min(self.sr_start_nimg, total)
                                    - _images(field_kimg)) if field_kimg > 0 else float('inf')
        self._volume_loader = self._sr_views = None
        super().__init__(run_dir, options, **kwargs)
        glr = options['G_opt_kwargs']['lr']
        sr_lr = glr if d.get('sr_lr') is None else d['sr_lr']
        field_lr = glr if d.get('field_lr') is None else d['field_lr']
        # (param group, {stage: its settings there})
        self._g_settings = [
            (group, {'image': {'lr': group['lr'], 'betas': group['betas']},
                     'field': {'lr': field_lr * phase.reg_ratio, 'betas': group['betas']},
                     'sr': lazy_regularised(sr_lr, SR_ADAM_BETAS, phase.reg_ratio)})
            for phase in self.phases if phase.name[0] == 'G' for group in phase.opt.param_groups]
        if kwargs.get('resume') is None:
            start_superresolution_as_upsampling(self.G)
            self.G_ema.load_state_dict(self.G.state_dict())

    def _open_dataset(self, kwargs):
        return FigureDataset.from_kwargs(kwargs)

    def _make_loss(self, kwargs):
        return DistillLoss(self.device, self.G, self.D, augment_pipe=self.augment_pipe,
                           adversarial_weight=self.o['distill']['adversarial_weight'],
                           sr_edge_weight=self.o['distill'].get('sr_edge_weight', 0.0), **kwargs)

    def stage(self):
        """'volume', 'image', 'field' or 'sr': the stage the next batch belongs to (by the image
        count only, so a resumed run passes through the same stages at the same points)."""
        if self.cur_nimg < self.volume_nimg:
            return 'volume'
        if self.cur_nimg >= self.sr_start_nimg:
            return 'sr'
        return 'field' if self.cur_nimg >= self.field_start_nimg else 'image'

    def _next_batch(self):
        stage = self.stage()
        for group, settings in self._g_settings:
            group.update(settings['image' if stage == 'volume' else stage])
        if stage in ('volume', 'sr'):
            if stage == 'sr':
                samples, labels, figures = self._superresolution_batch()
            else:
                *samples, labels, figures = next(self._volumes())
                samples = VolumeSamples(*(t.to(self.device) for t in samples))
            batch = (split_batch(samples, self.batch_gpu),
                     labels.to(self.device).split(self.batch_gpu))
        else:
            images, labels, figures = next(self.loader)
            batch = self._on_device(images, labels)
            if stage == 'field':
                batch = ([FieldTargets(image) for image in batch[0]], batch[1])
        self._batch_z = self._latents(figures)
        self._batch_c = labels
        return batch

    def _objective_start_nimg(self):
        """G_ema ramps up anew after the volume stage, like a new run: the super-resolution
        starts learning there, and an EMA reaching back into the volume stage would hide it
        for kimg."""
        return self.volume_nimg if self.cur_nimg >= self.volume_nimg else 0

    def _volumes(self):
        """The volume stage's loader (FigureVolumes in the same batch order as the images),
        made on first use so that a run resumed past the stage never starts its workers."""
        if self._volume_loader is None:
            self._volume_loader = self._make_loader(FigureVolumes(self.dataset))
        return self._volume_loader

    def _superresolution_batch(self):
        """(SuperresolutionViews, labels, figure indices) of one batch drawn at random from
        the stage's views, which are rendered on first use (again after a resume: the field
        they come from does not change in the stage)."""
        if self._sr_views is None:
            self.log(f'Rendering {SR_VIEWS} views for the super-resolution stage...')
            seed = self.o['random_seed'] * self.num_gpus + self.rank
            torch.manual_seed(seed)
            loader = torch.utils.data.DataLoader(
                torch.utils.data.Subset(self.dataset, range(min(SR_VIEWS, len(self.dataset)))),
                batch_size=self.batch_gpu, num_workers=self.o['data_loader_kwargs'].get(
                    'num_workers', 0))
            parts = []
            for images, labels, figures in loader:
                (target,), (c,) = self._on_device(images, labels)   # one chunk of batch_gpu
                features, ws = self.loss.render_views(self._latents(figures), c, self.cur_nimg)
                parts.append((SuperresolutionViews(features, ws, target), c, figures))
            rendered, labels, figures = zip(*parts)
            self._sr_views = (SuperresolutionViews(*map(torch.cat, zip(*rendered))),
                              torch.cat(labels), torch.cat(figures))
            self._sr_generator = torch.Generator().manual_seed(seed)
        rendered, labels, figures = self._sr_views
        index = torch.randint(len(figures), [self.batch_size // self.num_gpus],
                              generator=self._sr_generator)
        on_device = index.to(labels.device)
        return rendered.take(on_device), labels[on_device], figures[index]

    def _latents(self, figures):
        return torch.cat([views.latent(int(k), self.G.z_dim) for k in figures]).to(self.device)

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
        return (gw, gh), images, labels, self._latents(figures)

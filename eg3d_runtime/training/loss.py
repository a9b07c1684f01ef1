"""The EG3D training objective (docs/eg3d-reference.md 7.3): non-saturating logistic loss on a dual
discriminator, lazy R1, generator pose conditioning with a swap probability, density regularisation,
and the blur / neural-rendering-resolution fades. Schedules are plain functions of `cur_nimg` so the
loop can log them and a resumed run continues them."""
import math

import numpy as np
import torch
import torch.nn.functional as F

from . import stats

# Density regularisers of `--reg_type`; 'l1-alt' and 'total-variation' exist in the official
# option list but have no implementation there either (docs/eg3d-reference.md 4.3).
REG_TYPES = ('l1', 'l1-alt', 'monotonic-detach', 'monotonic-fixed', 'total-variation')
UNIMPLEMENTED_REG_TYPES = ('l1-alt', 'total-variation')


def blur_sigma(cur_nimg, blur_init_sigma, blur_fade_kimg):
    if blur_fade_kimg <= 0:
        return 0.0
    return max(1 - cur_nimg / (blur_fade_kimg * 1e3), 0) * blur_init_sigma


def swap_prob(cur_nimg, gpc_reg_prob, gpc_reg_fade_kimg):
    """Probability that the generator is conditioned on another sample's pose (None: zeros)."""
    if gpc_reg_prob is None:
        return None
    alpha = min(cur_nimg / (gpc_reg_fade_kimg * 1e3), 1) if gpc_reg_fade_kimg > 0 else 1
    return (1 - alpha) * 1 + alpha * gpc_reg_prob


def neural_rendering_resolution(cur_nimg, initial, final, fade_kimg):
    if final is None:
        return initial
    alpha = min(cur_nimg / (fade_kimg * 1e3), 1) if fade_kimg > 0 else 1
    return int(np.rint(initial * (1 - alpha) + final * alpha))


def blur(images, sigma):
    """Separable blur with taps 2^-(k/sigma)^2, |k| <= 3 sigma (the official kernel)."""
    size = int(math.floor(sigma * 3))
    if size <= 0:
        return images
    f = torch.arange(-size, size + 1, device=images.device).div(sigma).square().neg().exp2()
    f = (f / f.sum()).to(images.dtype)
    c = images.shape[1]
    images = F.conv2d(images, f.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, size), groups=c)
    return F.conv2d(images, f.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(size, 0), groups=c)


def resize(images, size):
    """The official 'antialiased' filtered resizing (bilinear, antialias)."""
    return F.interpolate(images, size=(size, size), mode='bilinear', align_corners=False,
                         antialias=True)


class EG3DLoss:
    """Accumulates the gradients of one phase ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth')
    for one micro-batch. Constructor arguments are the official `loss_kwargs`; the path-length
    and r1-fade arguments of the official signature are accepted and unused there too."""

    def __init__(self, device, G, D, augment_pipe=None, r1_gamma=10, style_mixing_prob=0,
                 blur_init_sigma=0, blur_fade_kimg=0, neural_rendering_resolution_initial=64,
                 neural_rendering_resolution_final=None, neural_rendering_resolution_fade_kimg=0,
                 gpc_reg_fade_kimg=1000, gpc_reg_prob=None, dual_discrimination=False,
                 filter_mode='antialiased', pl_weight=0, pl_batch_shrink=2, pl_decay=0.01,
                 pl_no_weight_grad=False, r1_gamma_init=0, r1_gamma_fade_kimg=0):
        if filter_mode != 'antialiased':
            raise ValueError(f"filter_mode '{filter_mode}' is not supported (train.py uses "
                             "'antialiased')")
        self.device = device
        self.G, self.D, self.augment_pipe = G, D, augment_pipe
        self.r1_gamma = r1_gamma
        self.style_mixing_prob = style_mixing_prob
        self.blur_init_sigma, self.blur_fade_kimg = blur_init_sigma, blur_fade_kimg
        self.nrr_initial = neural_rendering_resolution_initial
        self.nrr_final = neural_rendering_resolution_final
        self.nrr_fade_kimg = neural_rendering_resolution_fade_kimg
        self.gpc_reg_prob, self.gpc_reg_fade_kimg = gpc_reg_prob, gpc_reg_fade_kimg
        self.dual_discrimination = dual_discrimination

    def schedules(self, cur_nimg):
        """The values the fades take at `cur_nimg` (logged as Schedule/* by the loop)."""
        return {'blur_sigma': blur_sigma(cur_nimg, self.blur_init_sigma, self.blur_fade_kimg),
                'gpc_swap_prob': swap_prob(cur_nimg, self.gpc_reg_prob, self.gpc_reg_fade_kimg),
                'neural_rendering_resolution': neural_rendering_resolution(
                    cur_nimg, self.nrr_initial, self.nrr_final, self.nrr_fade_kimg)}

    def _conditioning(self, c, p_swap, per_sample=True):
        if p_swap is None:
            return torch.zeros_like(c)
        shape = (c.shape[0], 1) if per_sample else ()
        swap = torch.rand(shape, device=c.device) < p_swap
        return torch.where(swap, torch.roll(c, 1, 0), c)

    def _mapping(self, z, c_cond, update_emas):
        ws = self.G.mapping(z, c_cond, update_emas=update_emas)
        if self.style_mixing_prob > 0:
            cutoff = int(torch.randint(1, ws.shape[1], ()))
            if float(torch.rand(())) < self.style_mixing_prob:
                ws = ws.clone()
                ws[:, cutoff:] = self.G.mapping(torch.randn_like(z), c_cond,
                                                update_emas=False)[:, cutoff:]
        return ws

    def run_G(self, z, c, p_swap, nrr, update_emas=False):
        ws = self._mapping(z, self._conditioning(c, p_swap), update_emas)
        self.G.neural_rendering_resolution = nrr
        return self.G.synthesis(ws, c, neural_rendering_resolution=nrr, update_emas=update_emas)

    def run_D(self, img, c, sigma, update_emas=False):
        image, raw = blur(img['image'], sigma), img['image_raw']
        if self.augment_pipe is not None:
            pair = self.augment_pipe(torch.cat([image, resize(raw, image.shape[-1])], dim=1))
            image, raw = pair[:, :3], resize(pair[:, 3:], raw.shape[-1])
        return self.D({'image': image, 'image_raw': raw}, c, update_emas=update_emas)

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        rk = self.G.rendering_kwargs
        reg_type = rk.get('reg_type', 'l1')
        if rk.get('density_reg', 0) == 0 or reg_type in UNIMPLEMENTED_REG_TYPES:
            phase = {'Greg': None, 'Gboth': 'Gmain'}.get(phase, phase)
        if self.r1_gamma == 0:
            phase = {'Dreg': None, 'Dboth': 'Dmain'}.get(phase, phase)
        if phase is None:
            return
        s = self.schedules(cur_nimg)
        sigma, p_swap, nrr = s['blur_sigma'], s['gpc_swap_prob'], s['neural_rendering_resolution']
        real_raw = blur(resize(real_img, nrr), sigma)
        real = {'image': real_img, 'image_raw': real_raw}

        if phase in ('Gmain', 'Gboth'):
            logits = self.run_D(self.run_G(gen_z, gen_c, p_swap, nrr), gen_c, sigma)
            stats.report('Loss/scores/fake', logits)
            stats.report('Loss/signs/fake', logits.sign())
            loss = F.softplus(-logits)
            stats.report('Loss/G/loss', loss)
            loss.mean().mul(gain).backward()

        if phase in ('Greg', 'Gboth'):
            self._density_regularization(gen_z, gen_c, p_swap, reg_type, rk).mul(gain).backward()

        loss_fake = 0
        if phase in ('Dmain', 'Dboth'):
            fake = self.run_G(gen_z, gen_c, p_swap, nrr, update_emas=True)
            logits = self.run_D(fake, gen_c, sigma, update_emas=True)
            stats.report('Loss/scores/fake', logits)
            stats.report('Loss/signs/fake', logits.sign())
            loss_fake = F.softplus(logits)
            loss_fake.mean().mul(gain).backward()

        if phase in ('Dmain', 'Dreg', 'Dboth'):
            with_r1 = phase in ('Dreg', 'Dboth')
            image = real['image'].detach().requires_grad_(with_r1)
            raw = real['image_raw'].detach().requires_grad_(with_r1)
            logits = self.run_D({'image': image, 'image_raw': raw}, real_c, sigma)
            stats.report('Loss/scores/real', logits)
            stats.report('Loss/signs/real', logits.sign())
            loss = 0
            if phase in ('Dmain', 'Dboth'):
                loss = F.softplus(-logits)
                stats.report('Loss/D/loss', loss_fake + loss)
            if with_r1:
                inputs = [image, raw] if self.dual_discrimination else [image]
                grads = torch.autograd.grad(outputs=[logits.sum()], inputs=inputs,
                                            create_graph=True, only_inputs=True)
                penalty = sum(g.square().sum([1, 2, 3]) for g in grads)
                loss_r1 = penalty * (self.r1_gamma / 2)
                stats.report('Loss/r1_penalty', penalty)
                stats.report('Loss/D/reg', loss_r1)
                loss = loss + loss_r1
            loss.mean().mul(gain).backward()

    def _density_regularization(self, gen_z, gen_c, p_swap, reg_type, rk):
        """L1 between densities at random points and slightly moved copies (+ a monotonicity term
        along -z for the 'monotonic-*' types). Style mixing applies here too (the official
        regulariser raises a NameError when both are enabled)."""
        ws = self._mapping(gen_z, self._conditioning(gen_c, p_swap, per_sample=False), False)
        n = ws.shape[0]
        if reg_type == 'l1':
            points, std = 1000, rk['density_reg_p_dist']
        else:
            points, std = 2000, rk['box_warp'] / 256
        x0 = torch.rand((n, points, 3), device=ws.device) * 2 - 1
        x1 = x0 + torch.randn_like(x0) * std
        coords = torch.cat([x0, x1], dim=1)
        sigma = self.G.sample_mixed(coords, torch.randn_like(coords), ws,
                                    update_emas=False)['sigma']
        loss = F.l1_loss(sigma[:, :points], sigma[:, points:]) * rk['density_reg']
        if reg_type.startswith('monotonic'):
            step = torch.tensor([0, 0, 1.0], device=ws.device) * rk['box_warp'] / 256
            pair = torch.cat([x0, x0 - step], dim=1)
            s = self.G.sample_mixed(pair, torch.randn_like(pair), ws,
                                    update_emas=False)['sigma']
            front, behind = s[:, :points], s[:, points:]
            if reg_type == 'monotonic-detach':
                front = front.detach()
            loss = loss + 10 * F.relu(front - behind).mean()
        return loss

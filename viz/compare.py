"""Compare mode: up to four panels, each with its own network and neural rendering resolution,
sharing camera, latent, truncation, noise and render type. Panels on the same network share one
render worker, so its tri-planes are computed once for all of them."""
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from imgui_bundle import imgui
from PIL import Image, ImageDraw

from eg3d_runtime import cameras
from eg3d_runtime.frames.frame_renderer import FrameRenderer, RenderResult
from eg3d_runtime.frames.render_args import RenderArgs
from eg3d_runtime.networks.panohead import is_panohead
from gui_utils import imgui_compat
from gui_utils.gl_texture import Texture

from .remote_worker import RemoteWorker
from .render_worker import RenderWorker
from .viewport import drag_area, fit, shadowed_text

MAX_PANELS = 4
WINDOW_FLAGS = (imgui.WindowFlags_.no_decoration | imgui.WindowFlags_.no_move
                | imgui.WindowFlags_.no_saved_settings
                | imgui.WindowFlags_.no_bring_to_front_on_focus
                | imgui.WindowFlags_.no_scroll_with_mouse)
REMOTE = '(render server)'          # the key of the one worker when a server renders


def camera_conventions(rendering_kwargs):
    """What a network's cameras mean: orbit radius, look-at point (PanoHead looks at the
    origin whatever avg_camera_pivot says), whether it is pose-conditioned, and how its
    conditioning pose is given (PanoHead's --pose_cond degrees)."""
    return {'avg_camera_radius': rendering_kwargs.get('avg_camera_radius'),
            'pivot': tuple(cameras.network_pivot(rendering_kwargs)),
            'c_gen_conditioning_zero': rendering_kwargs.get('c_gen_conditioning_zero'),
            'pose_cond (PanoHead)': is_panohead(rendering_kwargs)}


@dataclass(frozen=True)
class Panel:
    pkl: str
    nrr: int | None = None

    @property
    def name(self):
        return self.pkl.rsplit('/', 1)[-1]


@dataclass(frozen=True)
class PanelBatch:
    """The requests of all panels on one network: rendered in order by one worker."""
    items: tuple[tuple[int, RenderArgs], ...]     # (panel index, args), ...

    @property
    def preview(self) -> bool:
        return any(args.preview for _, args in self.items)

    @property
    def pkl(self) -> str | None:
        return self.items[0][1].pkl


@dataclass(frozen=True)
class BatchResult:
    """The frames of one PanelBatch; an aborted batch is dropped by the worker as a whole."""
    results: Mapping[int, RenderResult]            # panel index -> its frame
    aborted: bool = False


class BatchRenderer:
    """A Renderer of PanelBatches: one FrameRenderer, so the panels share its tri-planes."""

    def __init__(self, device):
        self.frames = FrameRenderer(device)

    def render(self, batch, should_abort, on_progress) -> BatchResult:
        results = {}
        for idx, args in batch.items:
            result = self.frames.render(args, should_abort, on_progress)
            if result.aborted:
                return BatchResult(MappingProxyType(results), aborted=True)
            results[idx] = result
        return BatchResult(MappingProxyType(results))


def difference_heatmap(a, b):
    """|a - b| averaged over channels, as a black-red-yellow-white heat map (uint8 [H, W, 3])."""
    if a.shape != b.shape:
        b = np.asarray(Image.fromarray(b).resize(a.shape[1::-1], Image.BILINEAR))
    d = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(-1) / 255
    d = np.clip(d * 4, 0, 1)      # x4: small differences stay visible
    heat = np.stack([np.clip(d * 3, 0, 1), np.clip(d * 3 - 1, 0, 1), np.clip(d * 3 - 2, 0, 1)], -1)
    return (heat * 255).round().astype(np.uint8)


def panel_label(panel, result):
    parts = [panel.name]
    if result is not None and result.network is not None:
        parts.append(f'neural {result.nrr}^2')
        if result.timings:
            ms = result.timings['total']
            parts.append(f'{ms:.0f} ms ({1e3 / ms if ms else 0:.1f} FPS)')
        parts.append(result.quality)
    return '  |  '.join(parts)


class CompareView:
    def __init__(self, viz):
        self.viz = viz
        self.panels = []
        self.workers: dict[str, RenderWorker[PanelBatch, BatchResult]] = {}
        self.results = {}          # panel index -> RenderResult on screen
        self.shown = {}            # panel index -> the RenderResult whose image is on screen
        self._heat = None          # ((result a, result b), difference heatmap) last computed
        self._heat_uploaded = None  # the heatmap on the 'difference' texture
        self.textures = {}         # slot name -> Texture
        self.difference = None     # (panel a, panel b) or None
        self.wipe = None           # fraction of the first panel's width showing panel 1, or None
        self.interacting = False

    def set_panels(self, panels):
        self.panels = list(panels)[:MAX_PANELS]
        self.results, self.shown, self._heat = {}, {}, None
        if self.viz.remote:     # one stream: the server renders all panels of a frame together
            if REMOTE not in self.workers:
                self.workers[REMOTE] = RemoteWorker(self.viz.link, 'panels',
                                                    self.viz.worker.quality, BatchResult)
            return
        for pkl in set(self.workers) - {p.pkl for p in self.panels}:
            self.workers.pop(pkl).close()
        for panel in self.panels:
            if panel.pkl not in self.workers:
                self.workers[panel.pkl] = RenderWorker(BatchRenderer(self.viz.device))

    def close(self):
        for worker in self.workers.values():
            worker.close()
        self.workers = {}

    @property
    def busy(self):
        return any(w.busy for w in self.workers.values())

    def panel_args(self, base):
        return [base.with_(pkl=p.pkl, nrr=p.nrr if p.nrr else base.nrr) for p in self.panels]

    def submit(self, base):
        if self.viz.remote:
            worker = self.workers[REMOTE]
            # The difference view and recordings need exact pixels; the panels alone, JPEG.
            worker.lossless = self.difference is not None or \
                self.viz.capture_widget.orbit is not None
            worker.submit(PanelBatch(tuple(enumerate(self.panel_args(base)))))
            return
        groups = {}
        for idx, args in enumerate(self.panel_args(base)):
            groups.setdefault(args.pkl, []).append((idx, args))
        for pkl, items in groups.items():
            self.workers[pkl].submit(PanelBatch(tuple(items)))

    def poll(self):
        """Take finished frames; returns the panel results that arrived."""
        arrived = []
        for worker in self.workers.values():
            batch = worker.poll()
            if batch is None:
                continue
            for idx, result in batch.results.items():
                if idx >= len(self.panels):
                    continue
                self.results[idx] = result
                if result.image is not None:
                    self.shown[idx] = result
                    self._texture(idx).update(result.image)
                arrived.append(result)
        return arrived

    def complete(self, base):
        """All panels show full-quality frames of `base` (for captures and orbit videos)."""
        wanted = self.panel_args(base)
        return not self.busy and all(
            self.results.get(i) is not None and self.results[i].quality == 'full'
            and self.results[i].args == args.with_(preview=False) for i, args in enumerate(wanted))

    def _texture(self, key):
        if key not in self.textures:
            self.textures[key] = Texture()
        return self.textures[key]

    @property
    def images(self):
        """Panel index -> numpy uint8 image on screen (copied from the device on first use)."""
        return {idx: result.host_image for idx, result in self.shown.items()}

    def difference_image(self):
        """The heatmap of the two compared panels, recomputed only when either frame changed
        (it needs the pixels on the host)."""
        if self.difference is None:
            return None
        a, b = self.difference
        if a not in self.shown or b not in self.shown:
            return None
        pair = (self.shown[a], self.shown[b])
        if self._heat is None or any(x is not y for x, y in zip(self._heat[0], pair)):
            self._heat = (pair, difference_heatmap(pair[0].host_image, pair[1].host_image))
        return self._heat[1]

    def slots(self):
        """What is drawn, in order: ('panel', idx) or ('difference', None)."""
        slots = [('panel', i) for i in range(len(self.panels))]
        if self.wipe is not None and len(self.panels) >= 2:
            slots = [('panel', 0)] + slots[2:]          # panel 1 is wiped over panel 0
        if self.difference is not None:
            slots.append(('difference', None))
        return slots

    def draw(self, x, y, w, h):
        viz = self.viz
        imgui.set_next_window_pos(imgui.ImVec2(x, y))
        imgui.set_next_window_size(imgui.ImVec2(w, h))
        imgui.push_style_var(imgui.StyleVar_.window_padding, imgui.ImVec2(0, 0))
        imgui.begin('##compare', None, WINDOW_FLAGS)
        self.interacting = drag_area(viz, w, h)
        draw = imgui.get_window_draw_list()
        slots = self.slots()
        cols = 1 if len(slots) == 1 else 2 if len(slots) in (2, 4) else 3
        rows = (len(slots) + cols - 1) // cols
        cw, ch = w / cols, h / rows
        heat = self.difference_image()
        if heat is not None and heat is not self._heat_uploaded:
            self._texture('difference').update(heat)      # once per heatmap, not per GUI frame
            self._heat_uploaded = heat
        for n, (kind, idx) in enumerate(slots):
            sx, sy = x + (n % cols) * cw, y + (n // cols) * ch
            if kind == 'difference':
                if heat is not None:
                    self._draw_texture(draw, 'difference', sx, sy, cw, ch)
                a, b = self.difference
                shadowed_text(draw, sx + viz.spacing, sy + viz.spacing, 0xFFFFFFFF,
                              f'|panel {a + 1} - panel {b + 1}| (x4)')
                continue
            rect = self._draw_texture(draw, idx, sx, sy, cw, ch)
            if kind == 'panel' and idx == 0 and self.wipe is not None and rect and 1 in self.shown:
                self._draw_wipe(draw, rect)
            label = panel_label(self.panels[idx], self.results.get(idx))
            if idx == 0 and self.wipe is not None and len(self.panels) >= 2:
                label += '   <- wipe ->   ' + panel_label(self.panels[1], self.results.get(1))
            shadowed_text(draw, sx + viz.spacing, sy + viz.spacing, 0xFFFFFFFF, label)
            warning = self._camera_warning(idx)
            if warning:
                shadowed_text(draw, sx + viz.spacing, sy + viz.spacing + viz.font_size * 1.3,
                              0xFF66CCFF, warning)
            result = self.results.get(idx)
            if result is not None and result.error:
                shadowed_text(draw, sx + viz.spacing, sy + ch / 2, 0xFF6666FF, result.error)
        imgui.end()
        imgui.pop_style_var()

    def _draw_texture(self, draw, key, x, y, w, h):
        texture = self.textures.get(key)
        if texture is None or (key != 'difference' and key not in self.shown):
            return None
        rect = fit(texture.width, texture.height, x, y, w, h)
        draw.add_image(imgui_compat.texture(texture.id), imgui.ImVec2(rect[0], rect[1]),
                       imgui.ImVec2(rect[2], rect[3]))
        return rect

    def _draw_wipe(self, draw, rect):
        """Panel 1 over panel 0 to the right of the wipe line."""
        x0, y0, x1, y1 = rect
        split = x0 + (x1 - x0) * self.wipe
        draw.add_image(imgui_compat.texture(self.textures[1].id), imgui.ImVec2(split, y0),
                       imgui.ImVec2(x1, y1), imgui.ImVec2(self.wipe, 0), imgui.ImVec2(1, 1))
        draw.add_line(imgui.ImVec2(split, y0), imgui.ImVec2(split, y1), 0xFFFFFFFF, 2)

    def _camera_warning(self, idx):
        """Panels whose networks use other camera conventions than panel 1 say so."""
        first, this = self.results.get(0), self.results.get(idx)
        if idx == 0 or first is None or this is None or first.network is None \
                or this.network is None:
            return None
        a = camera_conventions(first.network.rendering_kwargs)
        b = camera_conventions(this.network.rendering_kwargs)
        differing = [k for k in a if a[k] != b[k]]
        return f'other camera conventions than panel 1 ({", ".join(differing)})' \
            if differing else None

    def composite(self):
        """All panels side by side at their rendered size, with labels and timings."""
        tiles = []
        for idx, panel in enumerate(self.panels):
            if idx in self.shown:
                tiles.append((self.shown[idx].host_image, panel_label(panel, self.results.get(idx))))
        heat = self.difference_image()
        if heat is not None:
            tiles.append((heat, 'difference'))
        if not tiles:
            return None
        height = max(t.shape[0] for t, _ in tiles)
        banner = 24
        canvas = Image.new('RGB', (sum(t.shape[1] for t, _ in tiles), height + banner))
        pen = ImageDraw.Draw(canvas)
        x = 0
        for tile, text in tiles:
            canvas.paste(Image.fromarray(tile), (x, banner))
            pen.text((x + 4, 5), text, fill=(255, 255, 255))
            x += tile.shape[1]
        return np.asarray(canvas)

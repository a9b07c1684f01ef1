"""Conditioning pose: the camera the mapping network is conditioned on (frontal by default)."""
from .gui_helpers import yaw_pitch_row


class CondPoseWidget:
    def __init__(self, viz):
        self.viz = viz
        self.yaw = self.pitch = 0.0

    def __call__(self, show=True):
        if not show:
            return
        self.yaw, self.pitch, reset = yaw_pitch_row(
            self.viz, 'Cond pose', 'cond', self.yaw, self.pitch,
            tip='Camera the latent is conditioned on; no effect on networks trained without '
                'pose conditioning (ShapeNet)')
        if reset:
            self.yaw = self.pitch = 0.0

    def render_fields(self):
        return {'cond_yaw': self.yaw, 'cond_pitch': self.pitch}

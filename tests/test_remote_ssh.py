"""The remote viewer's real path: the system ssh client to a real sshd on 127.0.0.1 (started
here on a free port with a throwaway host key and an authorized key in a temporary folder, and
stopped afterwards), which runs eg3d-serve and carries the protocol on the session's stdio."""
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from eg3d_runtime.frames.frame_renderer import FrameRenderer
from eg3d_runtime.frames.render_args import RenderArgs
from eg3d_runtime.remote import codec, values
from eg3d_runtime.remote.client import Connection, ssh_argv

SSHD = shutil.which('sshd') or '/usr/sbin/sshd'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def serving(marker):
    """Pids of eg3d-serve processes started for this test (their --root is `marker`)."""
    pids = []
    for proc in Path('/proc').iterdir():
        try:
            cmdline = (proc / 'cmdline').read_bytes().split(b'\0')
        except OSError:
            continue
        if b'eg3d_runtime.serve' in cmdline and str(marker).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def sshd(tmp_path):
    """(ssh command with its options, user@127.0.0.1) of an sshd of our own."""
    if not os.path.exists(SSHD):
        pytest.skip('openssh-server is not installed (make test installs it as root: '
                    'apt-get install openssh-server)')
    for name in ('host', 'user'):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', tmp_path / name],
                       check=True)
    (tmp_path / 'authorized_keys').write_text((tmp_path / 'user.pub').read_text())
    os.chmod(tmp_path / 'authorized_keys', 0o600)
    port = free_port()
    (tmp_path / 'sshd_config').write_text(
        f'Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path / "host"}\n'
        f'AuthorizedKeysFile {tmp_path / "authorized_keys"}\nPidFile {tmp_path / "sshd.pid"}\n'
        'PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n'
        'StrictModes no\nPermitRootLogin prohibit-password\n')
    if os.geteuid() == 0:
        os.makedirs('/run/sshd', exist_ok=True)        # privilege separation, as root
    daemon = subprocess.Popen([SSHD, '-D', '-e', '-f', tmp_path / 'sshd_config'],
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            break
        except OSError:
            if daemon.poll() is not None or time.monotonic() > deadline:
                daemon.kill()
                pytest.fail(f'sshd did not start: {daemon.stderr.read()[-500:]}')
            time.sleep(0.1)
    ssh = (f'ssh -p {port} -i {tmp_path / "user"} -o IdentitiesOnly=yes '
           f'-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR')
    yield ssh, f'{getpass.getuser()}@127.0.0.1'
    daemon.terminate()
    daemon.wait(timeout=10)


def test_a_real_ssh_round_trip_and_no_orphan(sshd, fixture_pkl, tmp_path, user_dirs):
    ssh, target = sshd
    marker = tmp_path / 'served'
    marker.mkdir()
    # The command --remote runs, plus this test's precision setting (sshd does not pass our
    # environment on) and a --root that tells this test's servers apart.
    command = (f'cd {REPO} && exec env EG3D_CPU_BF16=0 {sys.executable} -m eg3d_runtime.serve '
               f'--device cpu --root {marker}')
    args = RenderArgs(pkl=str(fixture_pkl), nrr=32)
    local = FrameRenderer('cpu').render(args).host_image
    for ending in ('close', 'cut'):
        connection = Connection.stdio(ssh_argv(target, command, ssh))
        assert connection.info['device'] == 'cpu' and len(serving(marker)) == 1
        frames = []
        connection.on_frame = frames.append
        connection.send('render', id=1, args=values.to_json(args), encoding='png')
        deadline = time.monotonic() + 300
        while not frames and time.monotonic() < deadline:
            time.sleep(0.05)
        assert np.array_equal(codec.decode_image(frames[0].blob), local)
        if ending == 'close':
            connection.close()
        else:                      # the laptop's ssh dies: sshd ends the session
            connection._process.kill()
            connection._process.wait()
        deadline = time.monotonic() + 30
        while serving(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not serving(marker), f'eg3d-serve outlived its ssh session ({ending})'
        connection.close()

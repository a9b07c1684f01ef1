"""The train.py option table (training/options.py) drives the parser, training_options.json,
resume and the Trainer tab's presets: every recorded option comes back from a run's
training_options.json as the value it was given, and every preset is a valid command line."""
import json
import zipfile

import PIL.Image
import pytest

from eg3d_runtime import configs
from eg3d_runtime.runs import training_process
from eg3d_runtime.training import options, resume
from eg3d_runtime.training.training_options import build_options, recorded_values

# Every option that training_options.json records, away from its default, in a GAN run and a
# distillation run (--distill excludes --data, --mirror and metrics).
GAN = ['--cfg=ffhq', '--gpus=2', '--batch=16', '--gamma=2.5', '--cond=False', '--mirror=True',
       '--aug=fixed', '--p=0.3', '--freezed=3', '--batch-gpu=4', '--cbase=16384', '--cmax=256',
       '--glr=0.001', '--dlr=0.003', '--map-depth=4', '--mbstd-group=2',
       '--metrics=fid10k_full,fid2k_full', '--inception=/x/inception.pth', '--kimg=10',
       '--tick=2', '--snap=5', '--seed=7', '--nobench=True', '--workers=1',
       '--neural_rendering_resolution_initial=32', '--neural_rendering_resolution_final=48',
       '--neural_rendering_resolution_fade_kimg=500', '--blur_fade_kimg=100', '--grid=4x3',
       '--gen_pose_cond=True', '--c-scale=2', '--gpc_reg_prob=0.7', '--gpc_reg_fade_kimg=300',
       '--disc_c_noise=1', '--sr_noise_mode=random', '--sr_num_fp16_res=2', '--g_num_fp16_res=2',
       '--d_num_fp16_res=0', '--style_mixing_prob=0.5',
       '--sr-module=training.superresolution.SuperresolutionHybrid2X', '--density_reg=0.5',
       '--density_reg_every=8', '--density_reg_p_dist=0.01', '--reg_type=monotonic-fixed',
       '--decoder_lr_mul=2']
ADA = ['--cfg=afhq', '--gpus=1', '--batch=8', '--gamma=1', '--aug=ada', '--target=0.7']
DISTILL = ['--cfg=demo', '--distill=3', '--distill_resolution=64', '--distill_supersample=1',
           '--distill_adv=0.1', '--distill_volume_kimg=2', '--distill_field_kimg=1',
           '--distill_field_lr=0.004', '--distill_sr_kimg=1', '--distill_sr_lr=0.003',
           '--distill_sr_edge_weight=4', '--gpus=1', '--batch=8', '--gamma=1']
# Resume continues from the run's latest snapshot, not from what the run itself resumed.
REPLACED_ON_RESUME = {'resume'}
# Options training_options.json does not record: where the run goes and what it is called,
# one-off choices of a launch, and the official unused ones. (--cfg is read back from the
# recorded rendering options, --outdir is the directory that holds the run.)
NOT_RECORDED = {'outdir', 'cfg', 'desc', 'resume_restart', 'resume_blur', 'dry_run', 'bench',
                'c_noise', 'sr_first_cutoff', 'sr_first_stopband'}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """A one-image 64x64 dataset with camera labels."""
    root = tmp_path_factory.mktemp('data')
    PIL.Image.new('RGB', (64, 64)).save(root / 'x.png')
    with zipfile.ZipFile(root / 'faces.zip', 'w') as z:
        z.write(root / 'x.png', 'img0.png')
        z.writestr('dataset.json', json.dumps({'labels': [['img0.png', [0.5] * 25]]}))
    return str(root / 'faces.zip')


def _commands(data, tmp_path):
    return {'gan': [f'--outdir={tmp_path}', f'--data={data}', *GAN],
            'ada': [f'--outdir={tmp_path}', f'--data={data}', *ADA],
            'distill': [f'--outdir={tmp_path}', '--metrics=none', *DISTILL]}


def test_every_recorded_option_is_exercised_away_from_its_default(data, tmp_path):
    parser = options.build_parser()
    given = set()
    for argv in _commands(data, tmp_path).values():
        parsed = vars(parser.parse_args(argv))
        given |= {name for name, value in parsed.items() if value != parser.get_default(name)}
    recorded = {option.dest for option in options.OPTIONS if option.json}
    missing = recorded - given - REPLACED_ON_RESUME
    assert not missing, f'add a value for {sorted(missing)} to the commands of this test'


def test_the_options_left_out_of_training_options_json_are_the_launch_only_ones():
    assert {option.dest for option in options.OPTIONS if not option.json} == NOT_RECORDED


@pytest.mark.parametrize('run', ['gan', 'ada', 'distill'])
def test_every_recorded_option_round_trips_through_training_options_json(run, data, tmp_path):
    given = options.build_parser().parse_args(_commands(data, tmp_path)[run])
    c, _dataset = build_options(given)          # resolves the defaults in `given` too
    run_dir = tmp_path / '00000-anything'
    run_dir.mkdir()
    (run_dir / 'training_options.json').write_text(json.dumps(dict(c, run_dir=str(run_dir))))
    snapshot = str(run_dir / 'network-snapshot-000004.pkl')
    open(snapshot, 'wb').close()
    args = resume.resume_args(run_dir)
    assert f'--resume={snapshot}' in args and f'--outdir={tmp_path}' in args
    resumed = options.build_parser().parse_args(args)
    assert build_options(resumed)[0] == dict(c, resume_pkl=snapshot)
    for option in options.OPTIONS:
        if option.json and option.dest not in REPLACED_ON_RESUME:
            assert getattr(resumed, option.dest) == getattr(given, option.dest), option.flag


def test_the_json_keeps_the_official_key_order_with_ours_after(data, tmp_path):
    c, _dataset = build_options(options.build_parser().parse_args(_commands(data, tmp_path)['gan']))
    assert list(c)[:17] == [
        'G_kwargs', 'D_kwargs', 'G_opt_kwargs', 'D_opt_kwargs', 'loss_kwargs',
        'data_loader_kwargs', 'training_set_kwargs', 'num_gpus', 'batch_size', 'batch_gpu',
        'metrics', 'total_kimg', 'kimg_per_tick', 'image_snapshot_ticks',
        'network_snapshot_ticks', 'random_seed', 'ema_kimg']
    assert list(c)[17:] == ['G_reg_interval', 'augment_kwargs', 'augment_p', 'cudnn_benchmark',
                            'image_grid_size', 'inception_path']
    assert list(c['G_kwargs'])[-4:] == ['num_fp16_res', 'sr_num_fp16_res', 'sr_kwargs',
                                        'conv_clamp']
    assert c['G_kwargs']['conv_clamp'] == 256 and c['D_kwargs']['conv_clamp'] is None
    assert c['loss_kwargs']['blur_fade_kimg'] == 16 * 100 / 32 and c['ema_kimg'] == 5


def test_an_official_run_resumes_with_what_it_recorded(tmp_path):
    """Official training_options.json: no keys of ours; its family from its rendering options."""
    c = {'G_kwargs': {'rendering_kwargs': configs.rendering_kwargs('afhq', gen_pose_cond=True),
                      'channel_base': 32768},
         'D_kwargs': {}, 'loss_kwargs': {'r1_gamma': 5, 'blur_fade_kimg': 200},
         'training_set_kwargs': {'path': '/data/afhq.zip', 'use_labels': True, 'xflip': True},
         'num_gpus': 8, 'batch_size': 32, 'total_kimg': 25000}
    values = recorded_values(c)
    assert values == {'data': '/data/afhq.zip', 'gpus': 8, 'batch': 32, 'gamma': 5, 'cond': True,
                      'mirror': True, 'cbase': 32768, 'kimg': 25000, 'blur_fade_kimg': 200,
                      'gen_pose_cond': True, 'gpc_reg_prob': 0.5, 'c_scale': 1.0,
                      'sr_noise_mode': 'none', 'density_reg': 0.25, 'density_reg_p_dist': 0.004,
                      'reg_type': 'l1', 'decoder_lr_mul': 1.0}
    run_dir = tmp_path / 'my-run'
    run_dir.mkdir()
    (run_dir / 'training_options.json').write_text(json.dumps(c))
    (run_dir / 'network-snapshot-000400.pkl').write_bytes(b'')
    assert '--cfg=afhq' in resume.resume_args(run_dir)
    del c['num_gpus']
    with pytest.raises(ValueError, match="missing or malformed entry 'num_gpus'"):
        recorded_values(c)
    c['num_gpus'], c['G_kwargs']['rendering_kwargs']['ray_start'] = 8, 1.0
    (run_dir / 'training_options.json').write_text(json.dumps(c))
    with pytest.raises(ValueError, match='rendering options are those of no --cfg'):
        resume.resume_args(run_dir)


@pytest.mark.parametrize('name', list(training_process.PRESETS))
def test_every_preset_is_a_command_line_the_parser_takes(name, data, tmp_path):
    preset = training_process.PRESETS[name]
    argv = training_process.train_command({'outdir': str(tmp_path), 'data': '' if 'distill' in
                                           preset else data, **preset})
    assert argv[:3] == training_process.TRAIN
    parsed = options.build_parser().parse_args(argv[3:])
    for key, value in preset.items():
        assert str(getattr(parsed, key)) == str(options.OPTION[key].parser_args.get(
            'type', str)(str(value))), key


def test_command_line_spells_each_option_as_the_table_does():
    assert options.command_line({'batch_gpu': 4, 'c_scale': '', 'cfg': 'demo', 'gpus': None,
                                 'dry_run': True}) == ['--cfg=demo', '--batch-gpu=4', '--dry-run']
    assert options.command_line({'dry_run': 'False'}) == []
    with pytest.raises(ValueError, match="unknown training option 'batch-gpu'"):
        options.command_line({'batch-gpu': 4})


def test_help_gives_the_demo_defaults_configs_uses():
    text = options.build_parser().format_help()
    demo = configs.DEMO_DEFAULTS
    assert f'(default 32768; demo {demo["cbase"]})' in text
    assert f'(default 512; demo {demo["cmax"]})' in text
    assert f'demo {demo["grid"]})' in text

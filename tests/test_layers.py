"""The engine's layers, read from the import statements themselves (ast; nothing is imported):
a lower layer never imports a higher one, so each part can be read, tested and reused without
what is built on it."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / 'eg3d_runtime'


def _module(path):
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_modules(path):
    """Every module an import statement of `path` names (absolute; `from a import b` gives
    both a and a.b, since b may be a module)."""
    package = _module(path).split('.')
    if path.name != '__init__.py':
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = '.'.join(base + ([node.module] if node.module else []))
            yield module
            yield from (f'{module}.{alias.name}' for alias in node.names)


def _unit(module):
    """The part of the engine a module belongs to: its sub-package, or the root module itself."""
    parts = module.split('.')
    return parts[1] if parts[0] == 'eg3d_runtime' and len(parts) > 1 else None


def _imports_of(folder):
    return {(path.relative_to(REPO).as_posix(), module) for path in folder.rglob('*.py')
            for module in imported_modules(path)}


def test_pickles_and_metrics_import_nothing_from_training():
    for folder in ('pickles', 'metrics'):
        wrong = sorted((path, module) for path, module in _imports_of(ENGINE / folder)
                       if _unit(module) in ('training', 'train'))
        assert not wrong, wrong


def test_the_engine_imports_no_gui():
    wrong = sorted((path, module) for path, module in _imports_of(ENGINE)
                   if module.split('.')[0] in ('viz', 'gui_utils', 'visualizer', 'imgui_bundle',
                                               'glfw', 'OpenGL'))
    assert not wrong, wrong


def test_the_parts_of_the_engine_import_each_other_without_a_loop():
    """Sub-packages and root modules form layers: a loop (training -> network_path -> training)
    would mean neither is below the other."""
    units = {path.stem if path.parent == ENGINE else path.relative_to(ENGINE).parts[0]
             for path in ENGINE.rglob('*.py')} - {'__init__'}
    graph = {unit: set() for unit in units}
    for path in ENGINE.rglob('*.py'):
        source = _unit(_module(path))
        for module in imported_modules(path):
            target = _unit(module)
            if source in units and target in units and target != source:
                graph[source].add(target)
    loops = []

    def visit(unit, trail):
        if unit in trail:
            loops.append(trail[trail.index(unit):] + [unit])
            return
        for target in sorted(graph[unit]):
            if target not in done:
                visit(target, trail + [unit])
        done.add(unit)

    done = set()
    for unit in sorted(units):
        visit(unit, [])
    assert not loops, ' ; '.join(' -> '.join(loop) for loop in loops)


def test_the_import_reader_resolves_relative_imports(tmp_path, monkeypatch):
    """The checks above see `from ..training import x` as eg3d_runtime.training.x."""
    package = tmp_path / 'eg3d_runtime' / 'pickles'
    package.mkdir(parents=True)
    (package / 'mod.py').write_text('from ..training.run_files import a\nimport viz.x\n'
                                    'from . import writer\n')
    monkeypatch.setitem(globals(), 'REPO', tmp_path)
    found = set(imported_modules(package / 'mod.py'))
    assert {'eg3d_runtime.training.run_files', 'eg3d_runtime.training.run_files.a', 'viz.x',
            'eg3d_runtime.pickles', 'eg3d_runtime.pickles.writer'} <= found
    assert _unit('eg3d_runtime.training.run_files.a') == 'training'


COMMANDS = 'eg3d_runtime.commands'
# The old command paths kept for existing command lines (`python -m eg3d_runtime.generate`,
# `python shapes_export.py`): each only forwards to its module in eg3d_runtime.commands.
OLD_PATHS = {f'eg3d_runtime.{name}': f'{COMMANDS}.{name}'
             for name in ('generate', 'gen_videos', 'invert', 'bench', 'train', 'dataset_tool',
                          'demo_quality', 'serve')}
OLD_PATHS['shapes_export'] = f'{COMMANDS}.shapes_export'


def _is_command(module):
    return module == COMMANDS or module.startswith(COMMANDS + '.') or module in OLD_PATHS


def test_no_library_module_and_nothing_in_viz_imports_a_command():
    """Commands are thin and on top: the viewer (viz/, gui_utils/, visualizer.py) and the
    library (every eg3d_runtime module outside commands/) never import one."""
    paths = [*ENGINE.rglob('*.py'), *(REPO / 'viz').rglob('*.py'),
             *(REPO / 'gui_utils').rglob('*.py'), REPO / 'visualizer.py']
    wrong = sorted((path.relative_to(REPO).as_posix(), module) for path in paths
                   if not _is_command(_module(path))
                   for module in imported_modules(path) if _is_command(module))
    assert not wrong, wrong


def test_the_old_command_paths_only_forward():
    for old, new in OLD_PATHS.items():
        path = REPO / (old.replace('.', '/') + '.py')
        imported = set(imported_modules(path)) - {'sys'}
        assert imported == {new, f'{new}.main'}, (old, imported)

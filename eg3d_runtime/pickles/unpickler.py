"""The hardened pure-Python unpickler that both stages of the safe loader build on (the outer
network pickle in safe_unpickle.py, the tensor storages inside it in legacy_storage.py), and
the errors they raise."""
import pickle


class PickleLoadError(Exception):
    """A file that cannot be loaded safely; the message is one line starting with the file name."""


class _Problem(Exception):
    """Raised while unpickling; `safe_load` turns it into a PickleLoadError naming the file."""


def _one_line(text, limit=300):
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _describe(exc):
    text = _one_line(exc, 200)
    return f'{type(exc).__name__}: {text}' if text else type(exc).__name__


def _refused(module, name):
    return _Problem(f"refuses to load global '{module}.{name}'")


class _Opcodes(dict):
    def __missing__(self, code):
        raise pickle.UnpicklingError(f'invalid opcode {bytes([code])!r}')


class _PythonUnpickler(pickle._Unpickler):
    """The pure-Python unpickler: the C one sizes its memo table by the largest memo index in
    the file, so a few crafted bytes make it allocate and zero gigabytes; here the memo is a
    dict. Two opcodes are tightened as well: BUILD may only set the state of the stand-ins in
    `buildable` (not of tensors, dicts or records), and BYTEARRAY8 reads its data before
    allocating instead of allocating (and zeroing) whatever size the file declares."""
    buildable = ()
    dispatch = _Opcodes(pickle._Unpickler.dispatch)

    def _load_build(self):
        target = self.stack[-2]
        if not isinstance(target, self.buildable):
            raise _Problem(f'refuses to set the state of a {type(target).__name__}')
        pickle._Unpickler.load_build(self)

    def _load_bytearray8(self):
        size = int.from_bytes(self.read(8), 'little')
        data = self.read(size)
        if len(data) != size:
            raise pickle.UnpicklingError('pickle data was truncated')
        self.append(bytearray(data))

    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8

"""Device choice that never raises: CUDA when it is really usable, else CPU."""
import torch


def cuda_available() -> bool:
    try:
        return torch.cuda.is_available() and torch.cuda.device_count() > 0
    except Exception:  # broken drivers or libraries must not take the app down
        return False


def default_device() -> str:
    return 'cuda' if cuda_available() else 'cpu'

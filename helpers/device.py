"""The device a run trains on: auto picks CUDA, else Apple's MPS, else the CPU. Where an NVIDIA GPU sits beside a
torch that cannot use it, the run says so in one line, with the fix; the README's "An NVIDIA GPU" says more."""

import shutil
import subprocess

import torch

# torch.OutOfMemoryError from torch 2.5 on.
OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
# PyTorch's CUDA 12.6 build, in place of a CPU-only torch (without --force-reinstall, pip keeps a CPU build).
INSTALL = "pip install --force-reinstall torch torchvision --index-url https://download.pytorch.org/whl/cu126"


def available():
    """What torch can train on here: cuda, else mps, else cpu."""
    return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"


def pick(name):
    """The torch.device that --device names; ValueError where this machine does not have it."""
    found = available()
    try:
        device = torch.device(found if name == "auto" else name)
    except RuntimeError:
        raise ValueError(f"'{name}' is not a device torch knows; use auto, cpu, cuda, mps, ...") from None
    if device.type not in ("cpu", found):
        why = f"this machine has {found}" if found != "cpu" else gpu_hint() or "torch finds no GPU here"
        raise ValueError(f"'{name}' is not available ({why}); use --device auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"'{name}' is not available (this machine has {torch.cuda.device_count()} CUDA devices)")
    return device


def pick_device(name):
    """pick(name), said in the run's first line, with a note where an NVIDIA GPU sits unused."""
    device = pick(name)
    print(f"device: {device}")
    if name == "auto" and device.type == "cpu" and (hint := gpu_hint()):
        print(f"note: training on the CPU: {hint}")
    # The shapes never change: cuDNN may time its kernels once and keep the fastest.
    torch.backends.cudnn.benchmark = device.type == "cuda"
    return device


def memory_format(device):
    """channels_last makes CPU convolutions faster (docs/performance.md); GPUs keep their default."""
    return torch.channels_last if device.type == "cpu" else torch.preserve_format


def is_out_of_memory(error):
    """CUDA raises torch.OutOfMemoryError; MPS and the CPU's allocator a RuntimeError that says so."""
    said = isinstance(error, RuntimeError) and ("out of memory" in str(error) or "DefaultCPUAllocator" in str(error))
    return said or isinstance(error, (OutOfMemoryError, MemoryError))


def gpu_hint():
    """One line where `nvidia-smi -L` lists a GPU that this torch cannot use, with the fix; else None."""
    try:
        listed = subprocess.run(
            [shutil.which("nvidia-smi") or "nvidia-smi", "-L"], capture_output=True, text=True, timeout=15
        ).stdout
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None
    gpu = next((line.split(" (UUID")[0] for line in listed.splitlines() if line.startswith("GPU ")), None)
    if gpu and torch.version.cuda is None:
        return f"nvidia-smi lists {gpu}, but torch {torch.__version__} is a CPU-only build; fix: {INSTALL}"
    if gpu:
        return (
            f"nvidia-smi lists {gpu}, but torch {torch.__version__} (built for CUDA {torch.version.cuda}) finds no"
            " GPU; fix: update the NVIDIA driver (README: An NVIDIA GPU)"
        )
    return None

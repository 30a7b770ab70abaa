"""The device a run trains on: auto picks CUDA, else another accelerator (Apple's MPS), else the CPU. Where an NVIDIA
GPU is there but torch cannot use it (a CPU-only torch, or a driver too old for its CUDA), the run says why and the fix."""
import shutil
import subprocess

import torch

from . import console

SELECTOR = "https://pytorch.org/get-started/locally/"  # PyTorch's install selector: the command for your CUDA version
INSTALL = "pip install torch torchvision --index-url https://download.pytorch.org/whl/cu126"  # its command for CUDA 12.6
CHECK = 'python -c "import torch; print(torch.cuda.is_available())"'
OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch.OutOfMemoryError from torch 2.5 on


def accelerator():
    """The accelerator torch can use here, or None: torch.accelerator from torch 2.6 on, CUDA or MPS before."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("mps") if torch.backends.mps.is_available() else None


def device_count(kind):
    return torch.accelerator.device_count() if hasattr(torch, "accelerator") else getattr(torch, kind).device_count()


def pick(name):
    """The torch.device that --device names; ValueError where this machine does not have it."""
    found = accelerator()
    if name == "auto":  # torch reports CUDA first when there is a CUDA GPU
        return found or torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"'{name}' is not a device torch knows; use auto, cpu, cuda, mps, ...") from None
    if device.type != "cpu" and (found is None or device.type != found.type):
        if device.type == "cuda" and found is None and (gpus := nvidia_gpus()):
            raise ValueError(f"'{name}' is not available: {unused_gpu_advice(gpus)}")
        have = f"this machine has {found.type}" if found else "this machine has no accelerator torch can use"
        raise ValueError(f"'{name}' is not available ({have}); use --device auto or cpu")
    if device.type != "cpu" and device.index is not None and device.index >= device_count(device.type):
        raise ValueError(f"'{name}' is not available (this machine has {device_count(device.type)} {device.type} devices)")
    return device


def pick_device(name):
    """pick(name), said in the run's first lines, with why an NVIDIA GPU sits unused where one does."""
    device = pick(name)
    console.say(f"device: {device}")
    if name == "auto" and device.type == "cpu" and (gpus := nvidia_gpus()):  # auto gives the CPU only where torch has no accelerator
        console.say(f"note: training on the CPU: {unused_gpu_advice(gpus)}")
    torch.backends.cudnn.benchmark = device.type == "cuda"  # the shapes never change: let cuDNN time its kernels once
    return device


def memory_format(device):
    """channels_last makes CPU convolutions faster (docs/performance.md); GPUs keep their default."""
    return torch.channels_last if device.type == "cpu" else torch.preserve_format


def is_out_of_memory(error):
    # CUDA raises torch.OutOfMemoryError; Apple's MPS a plain RuntimeError ("MPS backend out of memory"), and so does
    # the CPU's allocator ("DefaultCPUAllocator: not enough memory" on Windows, "can't allocate memory" elsewhere).
    return isinstance(error, (OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and any(words in str(error) for words in ("out of memory", "DefaultCPUAllocator")))


def nvidia_gpus():
    """The GPUs that the NVIDIA driver's own `nvidia-smi -L` lists; [] where it is not installed or fails."""
    try:
        listed = subprocess.run([shutil.which("nvidia-smi") or "nvidia-smi", "-L"], capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return []
    return [line.strip() for line in listed.splitlines() if line.startswith("GPU ")]


def unused_gpu_advice(gpus):
    """Why torch leaves the NVIDIA GPU unused, and the fix: a CUDA build of torch, or a newer driver."""
    if torch.version.cuda is None:
        why = f"the installed torch {torch.__version__} is a CPU-only build (pip's default on Windows)"
        fix = f"install a CUDA build of torch with the command from {SELECTOR}, for CUDA 12.6: {INSTALL}"
    else:
        why = f"the installed torch {torch.__version__} is built for CUDA {torch.version.cuda} and finds no CUDA device"
        fix = (f"update the NVIDIA driver (the top line of `nvidia-smi` shows the newest CUDA it supports),"
               f" or install a torch built for an older CUDA with the command from {SELECTOR}")
    return f"nvidia-smi lists {gpus[0].split(' (UUID')[0]}, but {why}.\n  fix: {fix}\n  then check: {CHECK} prints True"

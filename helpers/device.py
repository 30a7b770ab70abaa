"""The device a run trains on: auto picks CUDA, else Apple's MPS, else the CPU. Where an NVIDIA GPU sits beside a
torch that cannot use it (a CPU-only build, a driver too old, or a build without kernels for that GPU's generation),
the run says so in one line, with the build to install; docs/setup.md's GPU table says more."""

import re
import shutil
import subprocess

import torch

# torch.OutOfMemoryError from torch 2.5 on.
OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
# pip keeps an installed torch of the same version (PyPI's for Windows is CPU-only) unless it is forced to replace it;
# python -m pip is the pip of the Python that runs the scripts.
INSTALL = "python -m pip install --force-reinstall torch torchvision --index-url https://download.pytorch.org/whl/"


def install(capability):
    """The command that installs the CUDA build of torch with kernels for a GPU of this (major, minor). torch's own
    table of its builds (torch.cuda.PYTORCH_RELEASES_CODE_CC in 2.14): cu126 from sm_50 to sm_90, and on old drivers;
    cu130 and newer from sm_75 to sm_120 (RTX 50), on a driver whose nvidia-smi shows CUDA Version 13.0 or higher."""
    if capability is None:
        return f"{INSTALL}cu126 (cu130 for an RTX 50: the table in docs/setup.md)"
    if capability >= (10, 0):
        return f"{INSTALL}cu130 (on a driver whose nvidia-smi shows CUDA Version 13.0 or higher)"
    return f"{INSTALL}cu126"


def runs_on(arch, capability):
    """Whether torch's kernels for arch (sm_86, compute_90, ...) run on a GPU of capability (major, minor): CUDA's rule,
    sm_XY on the same major and an equal or higher minor, PTX (compute_XY) on any equal or higher capability."""
    digits = re.sub(r"\D", "", arch)
    built = (int(digits[:-1]), int(digits[-1]))
    return built <= capability and (arch.startswith("compute") or built[0] == capability[0])


def unusable():
    """One line where torch finds a CUDA GPU that this build has no kernels for (is_available() says True, the first
    kernel fails with "no kernel image is available"), with the build that has them; else None."""
    capability, archs = torch.cuda.get_device_capability(), torch.cuda.get_arch_list()
    if not archs or any(runs_on(arch, capability) for arch in archs):
        return None
    gpu = f"{torch.cuda.get_device_name()} is sm_{capability[0]}{capability[1]}"
    return (
        f"{gpu}, and torch {torch.__version__} has kernels for {archs[0]}-{archs[-1]} only; fix: {install(capability)}"
    )


def available():
    """What torch can train on here: cuda (a GPU this build has kernels for), else mps, else cpu."""
    if torch.cuda.is_available() and not unusable():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


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
    """One line where an NVIDIA GPU is here that this torch cannot use, with the fix; else None. torch's answers tell
    a GPU it sees; nvidia-smi one it does not (its compute capability, where the driver can tell, picks the build)."""
    if torch.cuda.is_available():
        return unusable()
    smi = shutil.which("nvidia-smi") or "nvidia-smi"
    for fields in ("name,compute_cap", "name"):  # drivers before 510 do not know compute_cap
        try:
            query = [smi, f"--query-gpu={fields}", "--format=csv,noheader"]
            done = subprocess.run(query, capture_output=True, timeout=15)
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode == 0 and done.stdout.strip():
            break
    else:
        return None
    gpu, _, cap = done.stdout.decode(errors="replace").splitlines()[0].strip().partition(", ")
    capability = tuple(map(int, cap.split("."))) if re.fullmatch(r"\d+\.\d", cap) else None
    sm = f" (sm_{cap.replace('.', '')})" if capability else ""
    found = f"nvidia-smi lists {gpu}{sm}, but torch {torch.__version__}"
    if torch.version.cuda is None:
        return f"{found} is a CPU-only build; fix: {install(capability)}"
    driver = "fix: update the NVIDIA driver (docs/setup.md: An NVIDIA GPU)"
    return f"{found} (built for CUDA {torch.version.cuda}) finds no GPU; {driver}"

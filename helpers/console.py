"""Where a run's words go. A character the console cannot encode (an English Windows, output redirected) is written
as \\uXXXX; a pipe that closes (`| head`, or `| tee` ended by the same Ctrl-C) silences stdout, with no traceback."""
import os
import sys
import warnings


def prepare():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # a notebook's or a test's stream, which takes any text
            pass
    # A stop's exit code in a notebook cell: IPython adds "To exit: use 'exit', 'quit', or Ctrl-D", which no learner asked.
    warnings.filterwarnings("ignore", message="To exit: use", category=UserWarning)


def say(line, file=None):
    """print() and flush; False where the output is closed, and silenced so that nothing later fails on it."""
    file = file or sys.stdout
    try:
        print(line, file=file, flush=True)
        return True
    except (OSError, ValueError):  # BrokenPipeError, or the terminal gone with SIGHUP
        return quiet(file)


def quiet(file):
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), file.fileno())
    except (OSError, ValueError, AttributeError):  # a stream with no file behind it
        pass
    return False


def tell(line):
    """A stop's message: on stderr, which `| tee` and `| head` leave open."""
    say(line, sys.stderr)


def in_kernel():
    """Whether this Python is a Jupyter kernel: a notebook, Colab, Kaggle, VS Code's or PyCharm's notebooks."""
    ipython = sys.modules.get("IPython")
    return hasattr(ipython and ipython.get_ipython(), "kernel")


def one_line(error):
    """The last non-empty line of an exception's message (torch's and torchvision's can span many)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__

"""Where the run's words go: stdout, or stderr for a stop; output that cannot encode a character (an English Windows
with its output redirected) writes \\uXXXX for it instead of failing; a pipe that closes (`| head`, or `| tee` ended by
the same Ctrl-C) silences stdout instead of ending in a traceback. And whether this Python is a Jupyter kernel."""
import os
import sys


def prepare():
    """Let stdout and stderr write what they cannot encode as a \\uXXXX escape, not fail on it."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # not in a notebook, whose streams take any text
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # closed, or not a text file after all
                pass


def say(line, file=None):
    """print() and flush; False where the output is closed (then silenced, so that nothing later fails on it)."""
    file = file or sys.stdout
    try:
        print(line, file=file, flush=True)
        return True
    except (BrokenPipeError, OSError, ValueError):  # closed by the reader, or gone with the terminal
        quiet(file)
        return False


def tell(line):
    """A stop's message: stderr, which `| tee` and `| head` leave open (and where it cannot be written, nowhere)."""
    say(line, sys.stderr)


def flush():
    """Flush stdout now; a pipe found closed is silenced, so that Python's last flush at exit finds nothing to fail on."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError):
        quiet(sys.stdout)


def quiet(file):
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), file.fileno())  # the rest of what is written goes nowhere
    except (OSError, ValueError, AttributeError):  # a stream with no file behind it (a test's, a notebook's)
        pass


def in_kernel():
    """Whether this is a Jupyter kernel (a notebook, Colab, Kaggle, VS Code's or PyCharm's notebooks)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and hasattr(shell, "kernel")


def one_line(error):
    """The last non-empty line of an exception's message (torch's and torchvision's errors can span many)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__

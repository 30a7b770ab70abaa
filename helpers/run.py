"""One training run, around the lesson: the flags, the device, the run's folder, the files after every epoch,
--resume, and the stops. The training scripts use it like this:

    run = helpers.Run(__file__, NET, argv, epochs=EPOCHS, ...)  # flags (usage errors exit 2), device, folder
    with run:                                   # a stop ends with a message and keeps the finished epochs
        ...                                     # data, model, criterion, optimizer
        first_epoch = run.start(model, optimizer, train_loader, test_loader)  # 1, or on from the checkpoint
        for epoch in range(first_epoch, args.epochs + 1):
            ...                                 # train, test
            run.save(epoch, train_loss, accuracy, train_seconds)  # the epoch's line, its files, the checkpoint
    # on leaving: mistakes.png and the final line (at a stop that keeps epochs: mistakes.png and the message)
"""
import math
import os
import sys
import time
from collections import namedtuple

from models import count_parameters

from . import checkpoint, device, flags, folders, resume, stops
from .flags import HYPERPARAMETERS

# What the script built, handed over by start(); data is the fingerprint of the loaders' images and labels.
Lesson = namedtuple("Lesson", "model optimizer train_loader test_loader data")


class Run:
    """One training run: checks the flags, claims a folder (or finds the run to resume), then keeps it up to date."""

    def __init__(self, script, net, argv=None, **defaults):
        self.net_name, self.script = net.__name__, os.path.basename(script)
        self.argv = None if argv is None else [str(a) for a in argv]
        script_path = sys.argv[0] if argv is None else flags.script_path(script)  # as it was started, for the resume advice
        description = f"Lecture 11: train {self.net_name} on MNIST with SGD. Each flag overrides the constant at the top of {self.script}."
        self.parser, self.args, self.typed = flags.parse_args(sys.argv[1:] if argv is None else self.argv, description, defaults)
        self.device = self.args.device
        default_out = os.path.normpath(defaults["out_dir"])
        if self.args.resume:  # the run to go on with, and its settings; a clash is refused, changing nothing
            path = resume.find_run(self.args, self.typed, default_out, self.script)
            state = resume.load_checkpoint(self.parser, path, self.net_name)
            settings, self.notes = resume.reconcile(self.parser, self.args, self.typed, path, state, self.script)
            self.folder, why = folders.RunFolder(path, settings, [], script_path, self.argv, default_out), None
        else:
            state, self.notes = {"history": []}, []
            self.folder, why = folders.RunFolder.claim_new(self.args.out_dir, self.new_settings(), script_path, self.argv, default_out)
        self.checkpoint = checkpoint.Checkpoint(self.folder.path, self.net_name, state)
        self.memory_format = device.prepare(self.device)
        self.lesson = None  # the script's model, optimizer and loaders, once start() has them
        self.clock = time.perf_counter()  # when the epoch being trained began
        try:
            if not self.args.resume:
                stops.say(f"results: {self.folder.path}{os.sep}" + (f" ({why}; delete a run's folder to replace it)" if why else ""))
            stops.say(f"device: {self.device}")
            gpu_note = device.gpu_note(self.args.requested_device, self.device)
            if gpu_note:
                stops.say(gpu_note)
        except SystemExit:  # the output went into `head`, which has closed it
            if not self.args.resume:
                self.folder.remove()
            raise

    def new_settings(self):
        """settings.json of a new run: what it was (every flag), where and with what it ran."""
        return {"net": self.net_name, "script": self.script, "started": folders.now(), "command": None,
                **{name: getattr(self.args, name) for name in ("epochs", *HYPERPARAMETERS, "log_every", "data_dir", "out_dir", "no_show")},
                "device": str(self.device), "versions": checkpoint.versions(), "environment": checkpoint.environment(self.device)}

    def start(self, model, optimizer, train_loader, test_loader):
        """Take the script's model, optimizer and loaders; with --resume, check the data and put the saved run back.
        Returns the first epoch to train."""
        data = checkpoint.fingerprint(train_loader, test_loader)
        self.lesson = Lesson(model, optimizer, train_loader, test_loader, data)
        print(f"{self.net_name}: {count_parameters(model):,} parameters, {data['train_images']:,} training images")
        try:
            if self.args.resume:
                state = self.checkpoint.state
                resume.check_data(self.parser, self.folder.path, state.get("data"), data, self.folder.settings, self.args.data_dir)
                for note in self.notes + resume.elsewhere(state.get("environment"), checkpoint.environment(self.device)):
                    print(note)
                self.checkpoint.restore(self.lesson)
                self.folder.add_resume({"epochs": self.args.epochs, "log_every": self.args.log_every, "data_dir": self.args.data_dir,
                                        "device": str(self.device), "versions": checkpoint.versions(),
                                        "environment": checkpoint.environment(self.device)})
                print(f"resuming: {checkpoint.epoch_range(self.checkpoint.saved)} done in {self.folder.path}{os.sep},"
                      f" on to epoch {self.args.epochs}")
            else:
                self.folder.update(data=data)
        except OSError as e:
            raise checkpoint.SaveError(f"{folders.SETTINGS}: {e.strerror or e}") from e
        self.clock = time.perf_counter()
        return self.checkpoint.saved + 1

    def save(self, epoch, train_loss, accuracy, train_seconds):
        """Record a finished epoch: check its loss, write the folder's files and print the epoch's line."""
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"the training loss became {train_loss} in epoch {epoch}")
        seconds = time.perf_counter() - self.clock
        hyperparameters = {name: getattr(self.args, name) for name in HYPERPARAMETERS}
        self.checkpoint.record(self.lesson, hyperparameters, self.device, (epoch, train_loss, accuracy, seconds))
        images_per_second = self.lesson.data["train_images"] / train_seconds
        print(f"epoch {epoch}: test accuracy {accuracy:.2f}%  (train {train_seconds:.1f} s, {images_per_second:.0f} img/s)", flush=True)
        self.clock = time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        try:
            if kind is not None and issubclass(kind, BrokenPipeError):
                stops.quiet_exit()
            return stops.stop(self, kind, error, traceback)
        except BrokenPipeError:  # while printing the final lines
            stops.quiet_exit()
        finally:
            if not self.args.resume and self.checkpoint.saved == 0:  # nothing to keep: leave nothing behind
                self.folder.remove()

"""Interruptible, resumable training.

At the end of every epoch the whole training state goes to the run's backup/ folder: the compiled
model with its optimizer state, the early-stopping counters and best weights, and the history so far.
SIGINT or SIGTERM asks training to stop after the epoch in progress, once that state is saved;
`run.py train --resume` then continues from it and ends where an uninterrupted run would have.
A second Ctrl-C aborts at once.
"""
import contextlib
import shutil
import signal

import keras
import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.core.fileio import read_json, write_json
from pipeline.core.layout import BACKUP_BEST as BEST
from pipeline.core.layout import BACKUP_MODEL as MODEL
from pipeline.core.layout import BACKUP_RANDOM as RANDOM
from pipeline.core.layout import BACKUP_STATE as STATE
from pipeline.models import load_model


class TrainingInterrupted(PipelineError):
    def __init__(self, signum, epoch, folder):
        name = signal.Signals(signum).name
        super().__init__(f"{name}: training stopped after epoch {epoch}; its state is saved in {folder}. "
                         "Continue with the same command plus --resume.", exit_code=128 + signum)


class StopRequest:
    """Set by SIGINT/SIGTERM while training; read at the end of each epoch."""

    def __init__(self):
        self.signum = None


@contextlib.contextmanager
def stop_on_signals(echo=print):
    request = StopRequest()

    def handle(signum, frame):
        if request.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt   # the second Ctrl-C: stop now
        request.signum = signum
        echo(f"\n{signal.Signals(signum).name}: stopping after this epoch (Ctrl-C again to abort now)")

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Checkpoint(keras.callbacks.Callback):
    """Saves the training state after every epoch; restores it when training resumes.

    Must come after EarlyStopping in the callback list, so that it sees that epoch's decision.
    `agree(signum) -> signum` settles, once per epoch, the signal the run obeys (on several workers,
    Placement.any_signal: a signal to one stops all); a signal that arrives later counts at the next.
    """

    def __init__(self, folder, early_stopping, request, state=None, agree=lambda signum: signum):
        super().__init__()
        self.folder, self.early_stopping, self.request, self.agree = folder, early_stopping, request, agree
        self.state = state
        self.history = dict(state["history"]) if state else {}

    def on_train_begin(self, logs=None):
        if self.state:   # EarlyStopping.on_train_begin has just reset itself; put its memory back
            stopping = self.state["early_stopping"]
            self.early_stopping.wait = stopping["wait"]
            self.early_stopping.best = stopping["best"]
            self.early_stopping.best_epoch = stopping["best_epoch"]
            with np.load(self.folder / self.state["folder"] / BEST) as best:
                self.early_stopping.best_weights = [best[f"arr_{i}"] for i in range(len(best.files))]
            with np.load(self.folder / self.state["folder"] / RANDOM) as saved:
                for i, variable in enumerate(random_state(self.model)):
                    variable.assign(saved[f"arr_{i}"])

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        signum = self.agree(self.request.signum)
        self._save(epoch + 1)
        if signum is not None and not self.model.stop_training:
            raise TrainingInterrupted(signum, epoch + 1, self.folder)

    def _save(self, epochs_done):
        """Write this epoch's files in a folder of their own, then point state.json at it: a kill at any
        moment leaves the previous complete state in force."""
        epoch_folder = self.folder / f"epoch-{epochs_done:04d}"
        epoch_folder.mkdir(parents=True, exist_ok=True)
        self.model.save(epoch_folder / MODEL)
        np.savez(epoch_folder / BEST, *(self.early_stopping.best_weights or self.model.get_weights()))
        np.savez(epoch_folder / RANDOM, *(keras.ops.convert_to_numpy(v) for v in random_state(self.model)))
        best = self.early_stopping.best
        write_json(self.folder / STATE, {
            "epoch": epochs_done,
            "folder": epoch_folder.name,
            "history": self.history,
            "early_stopping": {"wait": self.early_stopping.wait, "best_epoch": self.early_stopping.best_epoch,
                               "best": None if best is None else float(best)},
        })
        for old in self.folder.glob("epoch-*"):
            if old != epoch_folder:
                shutil.rmtree(old, ignore_errors=True)


def random_state(model):
    """The model's seed-generator states (dropout, noise layers): model.keras does not save them, and
    without them a resumed run draws other dropout masks than an unbroken one."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def load(folder):
    """(compiled model, state) saved by Checkpoint in `folder`, or None when there is none."""
    if not (folder / STATE).exists():
        return None
    state = read_json(folder / STATE)
    return load_model(folder / state["folder"] / MODEL), state


def discard(folder):
    shutil.rmtree(folder, ignore_errors=True)

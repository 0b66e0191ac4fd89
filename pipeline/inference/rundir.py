"""The one reader of a run folder, data/runs/<slug>/<run>/: every stage and command that reads a run
asks a RunDir (predict, submission, export, the report, photos, the runs table, --run best).

A run folder is self-contained. predictor.json says what the model's outputs mean (the keypoint
scaling as plain numbers, or the class names) and which input it takes, so predictions never
depend on what `scale` wrote since; params.json holds the run's resolved options (and so its
recipe's test-time augmentation), metrics.json its validation scores, test_metrics.json what
predict measured. An ensemble's folder names its member runs (ensemble.json), ordinary run
folders beside it, and holds no model of its own; so does a cross-validated run's, whose members
are its folds, with cv.json and oof.npz besides; so does a keypoint specialists run's
(specialists.json), whose two members' models load as one, merged by keypoint. A stack's folder (stack.json) holds a fitted
scikit-learn model and its test predictions, and no Keras model. File names are core/layout.py's.
"""
import datetime
import functools
from pathlib import Path

from pipeline.core import layout
from pipeline.core.competitions import COMPETITIONS, VALIDATION_METRIC, label_set
from pipeline.core.errors import PipelineError
from pipeline.core.fileio import load_arrays, read_json
from pipeline.core.recipes import run_tta
from pipeline.data.scale import KeypointScaling
from pipeline.models import load_model, merged_specialists


def predictor_description(task, input_shape, classes=None, scaling=None):
    """What predictor.json holds: everything besides the model that turns outputs into answers."""
    description = {"task": task, "input_shape": [int(d) for d in input_shape]}
    if task == "keypoints":
        description["scaling"] = scaling.to_json()
    else:
        description["classes"] = list(classes)
    return description


class RunDir:
    """A run folder, its files read when first asked for."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other):
        return isinstance(other, RunDir) and self.path == other.path

    def __hash__(self):
        return hash(self.path)

    @property
    def name(self):
        return self.path.name

    # --- what it is ------------------------------------------------------------------------------

    @functools.cached_property
    def params(self):
        return read_json(self.path / layout.PARAMS)

    @functools.cached_property
    def predictor(self):
        return read_json(self.path / layout.PREDICTOR)

    @property
    def task(self):
        """From predictor.json, else from the competition folder the run lives in."""
        by_slug = {c.slug: task for task, c in COMPETITIONS.items()}
        return self.predictor.get("task") or by_slug[self.path.parent.name]

    @property
    def input_shape(self):
        return tuple(self.predictor["input_shape"])

    @property
    def classes(self):
        """Expressions: the class names in output order; () for keypoints."""
        return tuple(self.predictor.get("classes", ()))

    @property
    def labels(self):
        """"fer2013" or "ferplus" for expressions runs, "" for keypoints."""
        return label_set(self.classes) if self.task == "expressions" and self.classes else ""

    @property
    def scaling(self):
        """Keypoints: the KeypointScaling its targets were trained in; None for expressions."""
        return KeypointScaling.from_json(self.predictor["scaling"]) if self.task == "keypoints" else None

    @property
    def tta(self):
        """The run's own test-time augmentation: its recipe's."""
        return run_tta(self.task, self.params)

    # --- how it did ------------------------------------------------------------------------------

    @property
    def complete(self):
        """Training finished: metrics.json is written last."""
        return (self.path / layout.METRICS).exists() and (self.path / layout.PREDICTOR).exists()

    @functools.cached_property
    def metrics(self):
        return read_json(self.path / layout.METRICS)

    @property
    def test_metrics(self):
        """What predict measured on the test rows; {} before predict has run."""
        path = self.path / layout.TEST_METRICS
        return read_json(path) if path.exists() else {}

    @property
    def finished(self):
        return datetime.datetime.fromtimestamp((self.path / layout.METRICS).stat().st_mtime)

    def score(self, tta=None):
        """The validation score under `tta`, by default the run's own test-time augmentation."""
        metric = VALIDATION_METRIC[self.task][0]
        tta = tta or self.tta
        return self.metrics.get(metric if tta == "none" else f"{metric}_{tta}", self.metrics[metric])

    # --- its models and outputs ------------------------------------------------------------------

    @property
    def is_ensemble(self):
        return (self.path / layout.ENSEMBLE).exists()

    @property
    def is_specialists(self):
        return (self.path / layout.SPECIALISTS).exists()

    @functools.cached_property
    def _membership(self):
        """ensemble.json or specialists.json, read once; None for a run of one model."""
        for kind in (layout.ENSEMBLE, layout.SPECIALISTS):
            if (self.path / kind).exists():
                return read_json(self.path / kind)
        return None

    @property
    def members(self):
        """The runs whose models make up this run's predictions (itself, for a single run); a
        specialists run's in its roles' order (complete, common)."""
        if self._membership is None:
            return [self]
        return [RunDir(self.path.parent / name) for name in self._membership["members"]]

    @property
    def is_cross_validated(self):
        return (self.path / layout.CROSS_VALIDATION).exists()

    @functools.cached_property
    def cross_validation(self):
        """cv.json (training/crossval.py): metric, folds, fold_scores, mean, std, oof; None for other runs."""
        return read_json(self.path / layout.CROSS_VALIDATION) if self.is_cross_validated else None

    def out_of_fold(self):
        """oof.npz: predictions, fold and row of every training row."""
        return load_arrays(self.path / layout.OUT_OF_FOLD)

    def files(self):
        """What this run's predictions depend on: its own files and every member's model."""
        if self.is_stack:
            return layout.stack_outputs(self.path)
        if self.is_cross_validated:
            own = layout.crossval_outputs(self.path)
        elif self.is_specialists:
            own = layout.specialists_outputs(self.path)
        else:
            own = layout.ensemble_outputs(self.path) if self.is_ensemble else layout.train_outputs(self.path)
        models = [member.path / layout.MODEL for member in self.members]
        return own + [m for m in models if m not in own]

    @property
    def is_stack(self):
        return (self.path / layout.STACK).exists()

    def load_models(self):
        """The trained Keras models (an ensemble's members, or the run's own), for inference."""
        if self.is_stack:
            raise PipelineError(f"run {self.name} is a stack of other runs' predictions, with no model of its "
                                "own: its test predictions were made by `run.py stack`")
        models = [load_model(member.path / layout.MODEL, compile=False) for member in self.members]
        if self.is_specialists:   # one model: the common keypoints from the second, the rest from the first
            complete, common = models
            return [merged_specialists(complete, common, self._membership["common_columns"])]
        return models

    def predictions(self):
        """predict's arrays: keypoints and image_ids, or probabilities and labels."""
        return load_arrays(self.path / layout.PREDICTIONS)

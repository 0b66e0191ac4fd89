"""Where everything lives: every folder under the project root and every file name a stage writes.

A literal file name anywhere else is a bug waiting to happen: the stages, the run loader, the
report and the server all take their names from here.
"""
from dataclasses import dataclass
from pathlib import Path

# data/raw/<slug>/: the download stage's record of where the files came from (absent for your own).
SOURCE = "SOURCE.json"

# data/interim/<slug>/ (clean)
# Part of the clean stage's cache key: raise it when the same raw files and options clean to
# something else, so a project cleaned by older code cleans again. 2: FERPlus test rows labelled by
# FERPlus's rule.
CLEAN_FORMAT = 2
CLEAN_ARRAYS = "clean.npz"
META = "meta.json"            # also in data/processed/<slug>/, copied by scale
LOOKUP = "lookup.csv"         # keypoints: IdLookupTable's rows
TEST_IDS = "test_ids.csv"     # the test rows' ids, in order

# data/processed/<slug>/ (scale)
ARRAYS = "arrays.npz"
SCALING = "scaling.json"      # keypoints

# data/runs/<slug>/
LATEST = "latest"             # names the most recently trained run

# data/runs/<slug>/<run>/: one trained run (train), or an ensemble of runs beside it (ensemble)
MODEL = "model.keras"
PREDICTOR = "predictor.json"  # what prediction needs besides the model: scaling or classes, input shape
HISTORY = "history.csv"
CURVE = "curve.png"
PARAMS = "params.json"
METRICS = "metrics.json"
ENSEMBLE = "ensemble.json"    # an ensemble's member runs (a cross-validated run's folds)
CROSS_VALIDATION = "cv.json"  # a cross-validated run's fold scores, their mean and std
OUT_OF_FOLD = "oof.npz"       # its out-of-fold predictions, one per training row
SPECIALISTS = "specialists.json"   # keypoint specialists' member runs, merged by keypoint
STACK = "stack.json"          # a stack's member runs and level-2 model (run.py stack)
STACKER = "stacker.joblib"    # the fitted level-2 scikit-learn model
BACKUP = "backup"             # the training state while a run trains (resume)
TENSORBOARD = "tensorboard"   # --tensorboard: Keras's logs (train/, validation/)
PREDICTIONS = "predictions.npz"
TEST_METRICS = "test_metrics.json"

# data/runs/<slug>/<run>/backup/
BACKUP_STATE = "state.json"
BACKUP_MODEL = MODEL
BACKUP_BEST = "best_weights.npz"
BACKUP_RANDOM = "random_state.npz"

# exports/<slug>/<run>/
EXPORT_METADATA = "metadata.json"
SAVED_MODEL = "saved_model"
ONNX_MODEL = "model.onnx"

# reports/<slug>/<run>/
REPORT_PAGE = "index.html"


def manifest(folder, stage):
    """The cache's record of a stage's outputs in `folder`."""
    return Path(folder) / f"{stage}.manifest.json"


def clean_outputs(competition, folder):
    names = (CLEAN_ARRAYS, META, TEST_IDS) + ((LOOKUP,) if competition.task == "keypoints" else ())
    return [folder / name for name in names]


def scale_outputs(competition, folder):
    return [folder / name for name in (ARRAYS, META) + ((SCALING,) if competition.task == "keypoints" else ())]


def train_outputs(run_dir):
    return [run_dir / name for name in (MODEL, PREDICTOR, HISTORY, CURVE, PARAMS, METRICS)]


def ensemble_outputs(run_dir):
    return [run_dir / name for name in (ENSEMBLE, PREDICTOR, PARAMS, METRICS)]


def crossval_outputs(run_dir):
    return [run_dir / name for name in (ENSEMBLE, CROSS_VALIDATION, OUT_OF_FOLD, PREDICTOR, PARAMS, METRICS)]


def specialists_outputs(run_dir):
    return [run_dir / name for name in (SPECIALISTS, PREDICTOR, PARAMS, METRICS)]


def stack_outputs(run_dir):
    return [run_dir / name for name in (STACKER, STACK, CROSS_VALIDATION, OUT_OF_FOLD, PREDICTIONS, TEST_METRICS,
                                        PREDICTOR, PARAMS, METRICS)]


def predict_outputs(run_dir):
    return [run_dir / PREDICTIONS, run_dir / TEST_METRICS]


def submission_paths(competition, submissions, run_name):
    """The run's own submission file and the competition's `-latest` copy."""
    return [submissions / f"{competition.slug}-{run_name}.csv", latest_submission(competition, submissions)]


def latest_submission(competition, submissions):
    return submissions / f"{competition.slug}-latest.csv"


@dataclass(frozen=True)
class Layout:
    """The folders of one project root."""
    root: Path

    def raw(self, competition):
        """Downloads (or the built-in sample), never modified after they land."""
        return self.root / "data" / "raw" / competition.slug

    def interim(self, competition):
        """Parsed and validated arrays (clean)."""
        return self.root / "data" / "interim" / competition.slug

    def processed(self, competition):
        """Scaled arrays and the fitted scaler (scale)."""
        return self.root / "data" / "processed" / competition.slug

    def runs(self, competition):
        """One folder per training run: model, history, metrics, predictions."""
        return self.root / "data" / "runs" / competition.slug

    def reports(self, competition, run):
        """`run.py report`: index.html and its plots."""
        return self.root / "reports" / competition.slug / run

    def exports(self, competition, run):
        """`run.py export`: the run's model for serving."""
        return self.root / "exports" / competition.slug / run

    @property
    def photos(self):
        """`run.py predict-image`: annotated copies and JSON files."""
        return self.root / "predictions" / "images"

    @property
    def videos(self):
        """`run.py predict-video`: annotated copies and CSV files."""
        return self.root / "predictions" / "videos"

    @property
    def submissions(self):
        return self.root / "submissions"

    @property
    def locks(self):
        return self.root / "data" / ".locks"

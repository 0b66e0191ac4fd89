"""The chain of stages, and the one facade the command line calls.

For each stage: check its input exists, ask the cache, else run it and record it. Each stage reads
only what the stage before it wrote. A stage's manifest lives beside its outputs and is written
last; `force` re-runs a stage even when the cache vouches for it.

A chain with nothing to do answers in under half a second, so the modules that bring pandas,
scikit-learn, Keras or TensorFlow are imported inside the method of the stage that needs them, only
when it runs (each such import says so).
"""
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import defaults
from pipeline.core.cache import Cache, params_hash, stage_lock
from pipeline.core.competitions import label_set, tasks_for
from pipeline.core.errors import MissingInputError, PipelineError
from pipeline.core.fileio import read_json, write_text
from pipeline.core.layout import (CLEAN_FORMAT, LATEST, META, METRICS, PREDICTOR, Layout, clean_outputs,
                                  crossval_outputs, ensemble_outputs, latest_submission, manifest, predict_outputs,
                                  scale_outputs, specialists_outputs, stack_outputs, submission_paths,
                                  train_outputs)
from pipeline.core.recipes import DEFAULT_RECIPE, SPECIALIST_ROLES, run_tta
from pipeline.data import download, kaggle_api, scale
from pipeline.inference import predict
from pipeline.inference.rundir import RunDir
from pipeline.models import get_spec
from pipeline.reporting import runs
from pipeline.training.params import resolve


@dataclass
class Outcome:
    stage: str
    task: str
    status: str      # "ran" | "cached"
    summary: dict
    seconds: float

    def line(self):
        """The stage's one summary line, as run.py prints it."""
        details = ", ".join(f"{k}={_short(v)}" for k, v in self.summary.items() if not isinstance(v, (dict, list)))
        return f"{self.task:<11} {self.stage:<10} {self.status:<6} {self.seconds:6.1f}s  {details}"


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else value


def competitions_for(task, model=None):
    """The competitions a command works on; a named --model narrows "both" to its own task."""
    if model and task == "both":
        task = get_spec(model).task
    return tasks_for(task)


def scores_line(competition, metrics, tta, written):
    """What `run.py all` says at the end of a competition: the validation score, also under the
    test-time augmentation `tta` the submission was predicted with, and the submission."""
    keypoints = competition.task == "keypoints"
    metric, unit = ("val_rmse", " px") if keypoints else ("val_accuracy", "")
    score = f"validation {'RMSE' if keypoints else 'accuracy'} {metrics[metric]:.3f}{unit}"
    if f"{metric}_{tta}" in metrics:   # absent for "none", and from runs made before the TTA existed
        score += f", {metrics[f'{metric}_{tta}']:.3f}{unit} with {tta} TTA"
    if keypoints:
        score += f" (predicting the mean: {metrics['baseline_rmse']:.3f} px)"
    else:
        score += f" (majority class: {metrics['majority_accuracy']:.3f})"
    if "cv_mean" in metrics:
        score = f"{metrics['folds']}-fold CV {metrics['cv_mean']:.3f} ± {metrics['cv_std']:.3f}{unit}; " + score
    return f"{competition.task}: {score}; submission {written['file']}"


class Pipeline:
    def __init__(self, root, echo=print, force=False, progress=True):
        """`echo` says what a user must see; with `progress`, it also narrates the long steps."""
        self.layout = Layout(Path(root))
        self.cache = Cache(Path(root))
        self.echo = echo
        self.force = force
        self.progress = echo if progress else None

    def _narrated(self, message, action):
        """`action`, preceded by a progress line when it runs (not when the cache answers)."""
        def run():
            if self.progress:
                self.progress(message)
            return action()
        return run

    def _step(self, stage, competition, manifest_path, inputs, params, outputs, action):
        started = time.perf_counter()
        with self._lock(competition, stage):
            if not self.force:
                summary = self.cache.fresh(manifest_path, inputs, params)
                if summary is not None:
                    return Outcome(stage, competition.task, "cached", summary, time.perf_counter() - started)
            # The old manifest may stay while the stage runs: it vouches only for outputs whose
            # hashes still match, and the new one replaces it once every output is written.
            input_digests = self.cache.digests(inputs)
            summary = action()
            self.cache.record(manifest_path, stage, inputs, params, outputs, summary, input_digests)
        return Outcome(stage, competition.task, "ran", summary, time.perf_counter() - started)

    def _lock(self, competition, stage):
        lock = self.layout.locks / f"{competition.slug}.{stage}.lock"
        waiting = lambda holder: self.echo(f"{competition.task} {stage}: waiting for {holder} to finish")  # noqa: E731
        return stage_lock(lock, on_wait=waiting)

    def _require(self, paths, competition, command, what):
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise MissingInputError(f"{competition.task}: no {what} ({missing[0]}); "
                                    f"run `python run.py {command} --task {competition.task}` first")

    # --- stages ----------------------------------------------------------------------------------

    def download(self, competition, source=defaults.SOURCE, seed=defaults.SEED, sample_size=defaults.SAMPLE_SIZE,
                 from_path=None):
        started = time.perf_counter()
        with self._lock(competition, "download"):
            summary = download.run(competition, self.layout.raw(competition), source=source, seed=seed,
                                   sample_size=sample_size, force=self.force, echo=self.echo,
                                   from_path=from_path, progress=self.progress)
        status = summary.pop("status")
        return Outcome("download", competition.task, status, summary, time.perf_counter() - started)

    def clean(self, competition, dropna=False, labels=defaults.LABELS, skip_bad_rows=False):
        raw, out = self.layout.raw(competition), self.layout.interim(competition)
        if not download.present_layout(competition, raw):
            self._require([raw / competition.required_files[0][0]], competition, "download", "raw data")
        params = {"skip_bad_rows": skip_bad_rows}
        params.update({"dropna": dropna} if competition.task == "keypoints" else {"labels": labels})

        def parse():
            from pipeline.data import clean  # pandas: when the stage runs

            return clean.run(competition, raw, out, **params)

        return self._step("clean", competition, manifest(out, "clean"), download.raw_files(raw),
                          {**params, "format": CLEAN_FORMAT}, clean_outputs(competition, out),
                          self._narrated(f"{competition.task} clean: parsing and checking the files in {raw}", parse))

    def scale(self, competition, keypoint_range=defaults.KEYPOINT_RANGE):
        interim, out = self.layout.interim(competition), self.layout.processed(competition)
        inputs = clean_outputs(competition, interim)
        self._require(inputs, competition, "clean", "cleaned data")
        params = {"keypoint_range": keypoint_range} if competition.task == "keypoints" else {}
        return self._step("scale", competition, manifest(out, "scale"), inputs, params,
                          scale_outputs(competition, out), lambda: scale.run(competition, interim, out, **params))

    def train(self, competition, resume=False, recipe=DEFAULT_RECIPE, **options):
        """Train one run; with `ensemble` K > 1, K runs with seeds seed .. seed+K-1 and the ensemble
        folder that averages them; with `folds` K > 1, one run per fold and the cross-validated
        folder over them (training/crossval.py); with `specialists` (keypoints), a run on the complete
        rows, one on every row's 4 common keypoints, and the folder that merges them
        (training/specialists.py). `latest` then names that folder."""
        params = resolve(competition.task, options, recipe)   # a bad option says so before missing data does
        inputs = scale_outputs(competition, self.layout.processed(competition))
        self._require(inputs, competition, "scale", "scaled data")
        size = params.pop("ensemble")
        folds = params.get("folds", 1)
        if params.get("specialists"):
            member_params = {key: value for key, value in params.items() if key != "specialists"}
            members = [self._train_one(competition, {**member_params, "specialist": role}, inputs, resume)
                       for role in SPECIALIST_ROLES]
            outcome = self._train_group(competition, members, params, "sp", len(members))
        elif folds > 1:
            members = [self._train_one(competition, {**params, "fold": k}, inputs, resume) for k in range(folds)]
            outcome = self._train_group(competition, members, params, "cv", folds)
        elif size > 1:
            members = [self._train_one(competition, {**params, "seed": params["seed"] + i}, inputs, resume)
                       for i in range(size)]
            outcome = self._train_group(competition, members, params, "x", size)
        else:
            outcome = self._train_one(competition, params, inputs, resume)
        write_text(self.layout.runs(competition) / LATEST, outcome.summary["run"] + "\n")
        return outcome

    def _train_group(self, competition, members, params, kind, size):
        """The folder over trained `members`: an ensemble ("x"), a cross-validation ("cv") or keypoint
        specialists ("sp")."""
        processed = self.layout.processed(competition)
        folders = [self.layout.runs(competition) / member.summary["run"] for member in members]
        name = f"{params['model']}-{kind}{size}-{params_hash([folder.name for folder in folders])}"
        folder = self.layout.runs(competition) / name
        member_outputs = [path for run in folders for path in train_outputs(run)]

        def average():
            # Keras: when the stage runs
            from pipeline.training import crossval, ensemble, specialists

            if kind == "cv":
                return crossval.run(competition, processed, folder, folders, params)
            if kind == "sp":
                return specialists.run(competition, processed, folder, folders, params)
            return ensemble.run(competition, processed, folder, folders, params)

        if kind == "cv":
            # The folds predict their held-out rows under their TTA: a recipe's new one predicts them again.
            key = {**params, "tta": run_tta(competition.task, params)}
            step = (manifest(folder, "crossval"), member_outputs, key, crossval_outputs(folder))
        elif kind == "sp":
            step = (manifest(folder, "specialists"), member_outputs, params, specialists_outputs(folder))
        else:
            step = (manifest(folder, "ensemble"), member_outputs, {**params, "ensemble": size}, ensemble_outputs(folder))
        outcome = self._step("train", competition, *step, average)
        outcome.summary = {"run": name, **outcome.summary}
        return outcome

    def _train_one(self, competition, params, inputs, resume):
        processed = self.layout.processed(competition)
        name = f"{params['model']}-{params_hash({'params': params, 'inputs': self.cache.digests(inputs)})}"
        run_dir = self.layout.runs(competition) / name

        def fit():
            from pipeline.training import train  # Keras and TensorFlow: when the stage runs

            return train.run(competition, processed, run_dir, params, echo=self.echo, resume_training=resume,
                             progress=self.progress is not None)

        outcome = self._step("train", competition, manifest(run_dir, "train"), inputs, params,
                             train_outputs(run_dir), fit)
        outcome.summary = {"run": name, **outcome.summary}
        return outcome

    def run_dir(self, competition, run=defaults.RUN):
        """The RunDir of `run`: a run's name, "latest" (the last trained) or "best" (by validation)."""
        folder = self.layout.runs(competition)
        if run == defaults.LATEST:
            self._require([folder / LATEST], competition, "train", "trained model")
            run = (folder / LATEST).read_text().strip()
        elif run == defaults.BEST:
            run = self._best_run(competition)
        self._require([folder / run / PREDICTOR], competition, "train", f"trained model for run {run}")
        return RunDir(folder / run)

    def _best_run(self, competition):
        """The best run by validation score; for expressions, among the runs trained on the labels
        the processed data holds now: predict scores a run against those labels, and FERPlus accuracy
        is not comparable with FER2013's."""
        folder = self.layout.runs(competition)
        meta = self.layout.processed(competition) / META
        labels = None
        if competition.task == "expressions" and meta.exists():
            labels = label_set(read_json(meta)["classes"])
        ranked = runs.listed(folder, competition.task, labels, comparable=True)
        if not ranked:
            others = runs.listed(folder, competition.task)
            if others:
                raise MissingInputError(f"{competition.task}: no run trained on {labels} labels, the labels of "
                                        f"the processed data (the {len(others)} here were trained on "
                                        f"{others[0].labels}); run `python run.py train --task expressions` "
                                        f"first, or `clean --labels {others[0].labels}` and `scale` to use them")
            self._require([folder / "*" / METRICS], competition, "train", "trained model")
        among = f" among the {labels} runs" if labels else ""
        self.echo(f"{competition.task}: best run by validation score{among}: {ranked[0].name}")
        return ranked[0].name

    def predict(self, competition, run=defaults.RUN, batch_size=defaults.PREDICT_BATCH_SIZE, tta=None):
        """`tta` None: the run's own (its recipe's)."""
        chosen = self.run_dir(competition, run)
        processed = self.layout.processed(competition)
        inputs = [*chosen.files(), *scale_outputs(competition, processed)]
        self._require(inputs, competition, "train", "complete run folder")
        # The views that will run, so a recipe's new default re-predicts; the batch size changes speed,
        # not predictions: not part of the key.
        params = {"tta": tta or chosen.tta}
        outcome = self._step("predict", competition, manifest(chosen.path, "predict"), inputs, params,
                             predict_outputs(chosen.path),
                             self._narrated(f"{competition.task} predict: the test images with run {chosen.name}",
                                            lambda: predict.run(competition, processed, chosen,
                                                                batch_size=batch_size, tta=tta)))
        outcome.summary = {"run": chosen.name, **outcome.summary}
        return outcome

    def submission(self, competition, run=defaults.RUN):
        chosen = self.run_dir(competition, run)
        interim = self.layout.interim(competition)
        inputs = [*predict_outputs(chosen.path), chosen.path / PREDICTOR, *clean_outputs(competition, interim)]
        self._require(inputs[:1], competition, "predict", "predictions")
        outputs = submission_paths(competition, self.layout.submissions, chosen.name)

        def write():
            from pipeline.inference import submission  # pandas: when the stage runs

            return submission.run(competition, interim, chosen, self.layout.submissions)

        return self._step("submission", competition, manifest(chosen.path, "submission"), inputs, {}, outputs, write)

    def stack(self, competition, run_names):
        """Fit a level-2 model on cross-validated runs' out-of-fold predictions (training/stack.py);
        the stack becomes `latest`, so `submission` writes its CSV."""
        from pipeline.training import stack  # scikit-learn and joblib: when the command runs

        members = [self.run_dir(competition, name) for name in run_names]
        stack.check_members(members)   # before predicting anything
        for member in members:   # the members' test predictions, from the cache once made
            self.echo(self.predict(competition, run=member.name).line())
        processed = self.layout.processed(competition)
        name = f"stack-{params_hash([member.name for member in members])}"
        folder = self.layout.runs(competition) / name
        inputs = [path for member in members for path in member.files() + predict_outputs(member.path)
                  if path.exists()] + scale_outputs(competition, processed)

        def fit():
            return stack.run(competition, processed, members, folder)

        outcome = self._step("stack", competition, manifest(folder, "stack"), inputs,
                             {"members": [member.name for member in members]}, stack_outputs(folder), fit)
        outcome.summary = {"run": name, **outcome.summary}
        write_text(self.layout.runs(competition) / LATEST, name + "\n")
        return outcome

    def all(self, task="both", source=defaults.SOURCE, from_path=None, sample_size=defaults.SAMPLE_SIZE,
            seed=defaults.SEED, dropna=False, labels=defaults.LABELS, skip_bad_rows=False,
            keypoint_range=defaults.KEYPOINT_RANGE, tta=None, resume=False, message=None, upload=False,
            **train_options):
        """Every stage for each competition of `task`, each stage's line said as it ends; with
        `upload`, each submission checked and sent to Kaggle (credentials checked first)."""
        if upload and not kaggle_api.credentials_available():   # fail now rather than after hours of training
            raise PipelineError(kaggle_api.NO_CREDENTIALS)
        started = time.perf_counter()
        competitions = competitions_for(task, train_options.get("model"))
        imported = download.to_import(competitions[0].task if len(competitions) == 1 else task, from_path)
        for competition in competitions:
            said = lambda outcome: self.echo(outcome.line()) or outcome  # noqa: E731
            said(self.download(competition, source=source, seed=seed, sample_size=sample_size,
                               from_path=from_path if competition in imported else None))
            said(self.clean(competition, dropna=dropna, labels=labels, skip_bad_rows=skip_bad_rows))
            said(self.scale(competition, keypoint_range=keypoint_range))
            trained = said(self.train(competition, seed=seed, resume=resume, **train_options))
            predicted = said(self.predict(competition, tta=tta))
            written = said(self.submission(competition))
            self.echo(scores_line(competition, trained.summary, predicted.summary["tta"], written.summary))
            if upload:
                self.upload(competition, Path(written.summary["file"]), message)
        self.echo(f"done in {time.perf_counter() - started:.1f}s")

    # --- Kaggle ------------------------------------------------------------------------------------

    def upload(self, competition, file=None, message=""):
        """Check `file` (default: the competition's -latest submission) and upload it; say Kaggle's answer."""
        from pipeline.inference import submit  # the Kaggle client: only when something is sent

        file = file or latest_submission(competition, self.layout.submissions)
        said = submit.upload(competition, file, message, self.layout.interim(competition))
        self.echo(f"{competition.task}: uploaded {file}: {said}")
        self.echo(f"See its score with: python run.py submissions --task {competition.task}")

    # --- outputs for people and servers (not cached: they are quick and write outside data/) -----

    def runs_table(self, competition):
        return runs.tables(self.layout.runs(competition), competition.task)

    def export(self, competition, run=defaults.RUN, formats=defaults.EXPORT):
        from pipeline.inference import export  # Keras: when the command runs

        started = time.perf_counter()
        chosen = self.run_dir(competition, run)
        summary = export.export(chosen, self.layout.exports(competition, chosen.name), formats)
        return Outcome("export", competition.task, "ran", {"run": chosen.name, **summary},
                       time.perf_counter() - started)

    def report(self, competition, run=defaults.RUN):
        from pipeline.reporting import report  # Keras, scikit-learn, matplotlib: when the command runs

        started = time.perf_counter()
        chosen = self.run_dir(competition, run)
        processed = self.layout.processed(competition)
        self._require(scale_outputs(competition, processed), competition, "scale", "scaled data")
        summary = report.build(competition, chosen, processed, self.layout.reports(competition, chosen.name),
                               echo=self.progress or (lambda _: None))
        return Outcome("report", competition.task, "ran", summary, time.perf_counter() - started)

    def predict_images(self, paths, task="both", out=None, runs_by_task=None, warn=None):
        """Find the faces in photographs and predict them with the chosen run of each competition."""
        from pipeline.serving import photos  # OpenCV and Keras: when the command runs

        predictors, _ = self._predictors(task, runs_by_task)
        return photos.run(paths, out or self.layout.photos, predictors, echo=self.echo, warn=warn)

    def _predictors(self, task, runs_by_task):
        """(task -> faces.Predictor, task -> RunDir) of the chosen run of each competition of `task`."""
        from pipeline.serving import faces  # OpenCV and Keras: when the command runs

        chosen = runs_by_task or {}
        run_dirs = {c.task: self.run_dir(c, chosen.get(c.task, defaults.RUN)) for c in tasks_for(task)}
        return {task: faces.load_predictor(run) for task, run in run_dirs.items()}, run_dirs

    def predict_videos(self, paths, task="both", out=None, runs_by_task=None, every=1, progress=None, warn=None):
        """Find, track and predict the faces of video files, frame by frame, with the chosen runs."""
        from pipeline.serving import video  # OpenCV and Keras: when the command runs

        predictors, _ = self._predictors(task, runs_by_task)
        return video.run(paths, out or self.layout.videos, predictors, every=every, echo=self.echo, warn=warn,
                         progress=progress)

    def serve(self, task="both", host=defaults.HOST, port=defaults.PORT, runs_by_task=None):
        """Load the chosen runs once and answer HTTP requests until Ctrl-C (serving/server.py)."""
        from pipeline.serving import server  # FastAPI, uvicorn, OpenCV and Keras: when the command runs

        listener = server.listening_socket(host, port)   # a port in use is said before the models load
        predictors, run_dirs = self._predictors(task, runs_by_task)
        for name, predictor in predictors.items():
            self.echo(f"{name}: run {predictor.run} (tta {predictor.tta})")
            predictor.warm_up()   # the first request is not the one that traces the models
        app = server.create_app(predictors, {name: server.run_summary(run) for name, run in run_dirs.items()})
        server.serve(app, listener, echo=self.echo)

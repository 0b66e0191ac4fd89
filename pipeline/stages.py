"""The chain of stages. For each: check its input exists, ask the cache, else run it and record it.

Each stage reads only what the stage before it wrote. A stage's manifest lives beside its outputs and
is written last; `force` re-runs a stage even when the cache vouches for it.
"""
import time
from dataclasses import dataclass
from pathlib import Path

from . import clean, download, ensemble, export, predict, recipes, report, scale, submission, train
from .cache import Cache, params_hash, stage_lock
from .competitions import label_set
from .errors import MissingInputError
from .fileio import read_json, write_text
from .paths import Layout

LATEST = "latest"   # file in data/runs/<slug>/ naming the most recently trained run


@dataclass
class Outcome:
    stage: str
    task: str
    status: str      # "ran" | "cached"
    summary: dict
    seconds: float


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

    def _step(self, stage, competition, manifest, inputs, params, outputs, action):
        started = time.perf_counter()
        with self._lock(competition, stage):
            if not self.force:
                summary = self.cache.fresh(manifest, inputs, params)
                if summary is not None:
                    return Outcome(stage, competition.task, "cached", summary, time.perf_counter() - started)
            # The old manifest may stay while the stage runs: it vouches only for outputs whose
            # hashes still match, and the new one replaces it once every output is written.
            input_digests = self.cache.digests(inputs)
            summary = action()
            self.cache.record(manifest, stage, inputs, params, outputs, summary, input_digests)
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

    def download(self, competition, source="auto", seed=0, sample_size=1.0, from_path=None):
        started = time.perf_counter()
        with self._lock(competition, "download"):
            summary = download.run(competition, self.layout.raw(competition), source=source, seed=seed,
                                   sample_size=sample_size, force=self.force, echo=self.echo,
                                   from_path=from_path, progress=self.progress)
        status = summary.pop("status")
        return Outcome("download", competition.task, status, summary, time.perf_counter() - started)

    def clean(self, competition, dropna=False, labels="fer2013", skip_bad_rows=False):
        raw, out = self.layout.raw(competition), self.layout.interim(competition)
        if not download.present_layout(competition, raw):
            self._require([raw / competition.required_files[0][0]], competition, "download", "raw data")
        params = {"skip_bad_rows": skip_bad_rows}
        params.update({"dropna": dropna} if competition.task == "keypoints" else {"labels": labels})
        return self._step("clean", competition, out / "clean.manifest.json", download.raw_files(raw),
                          {**params, "format": clean.FORMAT}, clean.outputs(competition, out),
                          self._narrated(f"{competition.task} clean: parsing and checking the files in {raw}",
                                         lambda: clean.run(competition, raw, out, **params)))

    def scale(self, competition, keypoint_range="image"):
        interim, out = self.layout.interim(competition), self.layout.processed(competition)
        inputs = clean.outputs(competition, interim)
        self._require(inputs, competition, "clean", "cleaned data")
        params = {"keypoint_range": keypoint_range} if competition.task == "keypoints" else {}
        return self._step("scale", competition, out / "scale.manifest.json", inputs, params,
                          scale.outputs(competition, out), lambda: scale.run(competition, interim, out, **params))

    def train(self, competition, resume=False, recipe=recipes.DEFAULT_RECIPE, **options):
        """Train one run, or with `ensemble` K > 1, K runs with seeds seed .. seed+K-1 and the ensemble
        folder that averages them; `latest` then names the ensemble."""
        processed = self.layout.processed(competition)
        inputs = scale.outputs(competition, processed)
        self._require(inputs, competition, "scale", "scaled data")
        params = recipes.resolve(competition.task, options, recipe)
        size = params.pop("ensemble")
        members = [self._train_one(competition, {**params, "seed": params["seed"] + i}, inputs, resume)
                   for i in range(size)]
        if size == 1:
            outcome = members[0]
        else:
            runs = [self.layout.runs(competition) / member.summary["run"] for member in members]
            name = f"{params['model']}-x{size}-{params_hash([run.name for run in runs])}"
            folder = self.layout.runs(competition) / name
            member_outputs = [path for run in runs for path in train.outputs(run)]
            outcome = self._step("train", competition, folder / "ensemble.manifest.json", member_outputs,
                                 {**params, "ensemble": size}, ensemble.outputs(folder),
                                 lambda: ensemble.run(competition, processed, folder, runs, params))
            outcome.summary = {"run": name, **outcome.summary}
        write_text(self.layout.runs(competition) / LATEST, outcome.summary["run"] + "\n")
        return outcome

    def _train_one(self, competition, params, inputs, resume):
        processed = self.layout.processed(competition)
        name = f"{params['model']}-{params_hash({'params': params, 'inputs': self.cache.digests(inputs)})}"
        run_dir = self.layout.runs(competition) / name
        outcome = self._step("train", competition, run_dir / "train.manifest.json", inputs, params,
                             train.outputs(run_dir),
                             lambda: train.run(competition, processed, run_dir, params, echo=self.echo,
                                               resume_training=resume, progress=self.progress is not None))
        outcome.summary = {"run": name, **outcome.summary}
        return outcome

    def run_dir(self, competition, run="latest"):
        """The folder of `run`: a run's name, "latest" (the last trained) or "best" (by validation)."""
        runs = self.layout.runs(competition)
        if run == "latest":
            self._require([runs / LATEST], competition, "train", "trained model")
            run = (runs / LATEST).read_text().strip()
        elif run == "best":
            run = self._best_run(competition)
        run_dir = runs / run
        self._require([run_dir / predict.PREDICTOR], competition, "train", f"trained model for run {run}")
        return run_dir

    def _best_run(self, competition):
        """The best run by validation score; for expressions, among the runs trained on the labels
        the processed data holds now: predict scores a run against those labels, and FERPlus accuracy
        is not comparable with FER2013's."""
        from .runs import listed

        runs = self.layout.runs(competition)
        meta = self.layout.processed(competition) / scale.META
        labels = None
        if competition.task == "expressions" and meta.exists():
            labels = label_set(read_json(meta)["classes"])
        ranked = listed(runs, competition.task, labels)
        if not ranked:
            others = listed(runs, competition.task)
            if others:
                raise MissingInputError(f"{competition.task}: no run trained on {labels} labels, the labels of "
                                        f"the processed data (the {len(others)} here were trained on "
                                        f"{others[0].labels}); run `python run.py train --task expressions` "
                                        f"first, or `clean --labels {others[0].labels}` and `scale` to use them")
            self._require([runs / "*" / train.METRICS], competition, "train", "trained model")
        among = f" among the {labels} runs" if labels else ""
        self.echo(f"{competition.task}: best run by validation score{among}: {ranked[0].name}")
        return ranked[0].name

    def _run_files(self, run_dir):
        """What a run's predictions depend on: its folder's files and every member model."""
        own = ensemble.outputs(run_dir) if ensemble.is_ensemble(run_dir) else train.outputs(run_dir)
        models = [member / train.MODEL for member in ensemble.member_dirs(run_dir)]
        return own + [m for m in models if m not in own]

    def predict(self, competition, run="latest", batch_size=256, tta=None):
        """`tta` None: the run's own (its recipe's)."""
        run_dir = self.run_dir(competition, run)
        processed = self.layout.processed(competition)
        inputs = [*self._run_files(run_dir), *scale.outputs(competition, processed)]
        self._require(inputs, competition, "train", "complete run folder")
        params = {"tta": tta}   # the batch size changes speed, not predictions: not part of the key
        outcome = self._step("predict", competition, run_dir / "predict.manifest.json", inputs, params,
                             predict.outputs(run_dir),
                             self._narrated(f"{competition.task} predict: the test images with run {run_dir.name}",
                                            lambda: predict.run(competition, processed, run_dir,
                                                                batch_size=batch_size, tta=tta)))
        outcome.summary = {"run": run_dir.name, **outcome.summary}
        return outcome

    def submission(self, competition, run="latest"):
        run_dir = self.run_dir(competition, run)
        interim = self.layout.interim(competition)
        inputs = [*predict.outputs(run_dir), run_dir / predict.PREDICTOR, *clean.outputs(competition, interim)]
        self._require(inputs[:1], competition, "predict", "predictions")
        outputs = submission.paths(competition, self.layout.submissions, run_dir.name)
        return self._step("submission", competition, run_dir / "submission.manifest.json", inputs, {},
                          outputs, lambda: submission.run(competition, interim, run_dir,
                                                          self.layout.submissions, run_dir.name))

    # --- outputs for people and servers (not cached: they are quick and write outside data/) -----

    def export(self, competition, run="latest", formats=("keras", "savedmodel")):
        started = time.perf_counter()
        run_dir = self.run_dir(competition, run)
        summary = export.run(run_dir, self.layout.exports(competition, run_dir.name), formats)
        return Outcome("export", competition.task, "ran", {"run": run_dir.name, **summary},
                       time.perf_counter() - started)

    def report(self, competition, run="latest"):
        started = time.perf_counter()
        run_dir = self.run_dir(competition, run)
        processed = self.layout.processed(competition)
        self._require(scale.outputs(competition, processed), competition, "scale", "scaled data")
        summary = report.build(competition, run_dir, processed, self.layout.reports(competition, run_dir.name),
                               echo=self.progress or (lambda _: None))
        return Outcome("report", competition.task, "ran", summary, time.perf_counter() - started)

#!/usr/bin/env python
"""Kaggle face competitions pipeline: download -> clean -> scale -> train -> predict -> submission.

    python run.py all                 # both competitions, end to end (built-in sample when offline)
    python run.py train --task keypoints --model kaggle_cnn --epochs 100
    python run.py COMMAND --help      # every option of a stage
"""
import sys
import time
from pathlib import Path

import click

from pipeline.competitions import tasks_for
from pipeline.errors import PipelineError
from pipeline.recipes import CHOICES, DEFAULT_RECIPE, EXPRESSION_ONLY, KEYPOINT_ONLY, RECIPES, default

TASK_CHOICES = click.Choice(["keypoints", "expressions", "both"])
TASK_OF_KEY = {**{key: "keypoints" for key in KEYPOINT_ONLY}, **{key: "expressions" for key in EXPRESSION_ONLY}}


class Group(click.Group):
    """Turns the pipeline's own errors into one line and their exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PipelineError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; finished stages stay cached, the interrupted one will run again.", err=True)
            ctx.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=".", envvar="FACES_ROOT",
              help="Project folder holding data/ and submissions/.")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's and JAX's own log lines too.")
@click.option("--quiet", is_flag=True, help="Only each stage's summary line (and errors): no progress lines, "
                                            "no per-epoch lines.")
@click.pass_context
def cli(ctx, root, verbose, quiet):
    """Train models and make Kaggle submissions for Facial Keypoints Detection and FER2013.

    Each stage reads what the previous one wrote and is skipped ("cached") while its inputs and
    options are unchanged. `python run.py all` runs the whole chain.
    """
    if verbose:
        from pipeline import runtime

        runtime.configure(verbose=True)
    ctx.obj = root.resolve()


# --- options, defined once and shared by the stage commands and `all` ----------------------------

def options(*decorators):
    def apply(function):
        for decorator in reversed(decorators):
            function = decorator(function)
        return function
    return apply


TASK = click.option("--task", type=TASK_CHOICES, default="both", help="Which competition.")
FORCE = click.option("--force", is_flag=True, help="Re-run even when the cache says the outputs are current.")
SEED = click.option("--seed", type=int, default=0, help="Seed for the built-in sample and for training.")
RESUME = click.option("--resume", is_flag=True,
                      help="Continue a training stopped by Ctrl-C or SIGTERM from its last epoch (same options).")
DOWNLOAD = options(
    click.option("--source", type=click.Choice(["auto", "kaggle", "sample"]), default="auto",
                 help="auto: files already in data/raw/<slug>/, else Kaggle if credentials exist, else the built-in sample."),
    click.option("--from", "from_path", type=click.Path(exists=True, path_type=Path), default=None,
                 help="Import a file or folder you have instead: csv, csv.gz/xz, zip, tar.gz/xz or the Kaggle "
                      "bundle as downloaded. With --task both, each competition whose files it holds."),
    click.option("--sample-size", type=click.FloatRange(min=0, min_open=True), default=1.0,
                 help="Size of the built-in sample as a fraction of the default (500 keypoint and 1350 expression faces)."),
)
CLEAN = options(
    click.option("--dropna", is_flag=True, help="Keypoints: keep only rows with all 30 targets (the reference); default keeps all rows and masks missing targets."),
    click.option("--labels", type=click.Choice(["fer2013", "ferplus"]), default="fer2013",
                 help="Expressions: FER2013's labels, or FERPlus majority votes from fer2013new.csv."),
    click.option("--skip-bad-rows", is_flag=True, help="Drop malformed training rows (counted in the summary) instead of stopping."),
)
SCALE = options(
    click.option("--keypoint-range", type=click.Choice(["image", "data"]), default="image",
                 help="Map keypoints to [-1, 1] from the image bounds 0..96 (reference) or from the training data's min..max."),
)

def recipe_default(key):
    """The help text's default for a training option: what the default recipe gives each task."""
    tasks = [TASK_OF_KEY[key]] if key in TASK_OF_KEY else ["keypoints", "expressions"]
    values = {task: default(key, task) for task in tasks}
    if len(set(map(repr, values.values()))) == 1:
        return f"  [{DEFAULT_RECIPE} recipe: {values[tasks[0]]}]"
    return f"  [{DEFAULT_RECIPE} recipe: " + ", ".join(f"{v} {t}" for t, v in values.items()) + "]"


def train_option(name, help, key=None, **kwargs):
    key = key or name.lstrip("-").replace("-", "_")
    if key in CHOICES:
        kwargs["type"] = click.Choice(CHOICES[key])
    return click.option(name, key, default=None, help=help + recipe_default(key), **kwargs)


TRAIN = options(
    click.option("--recipe", type=click.Choice(list(RECIPES)), default=DEFAULT_RECIPE,
                 help="Named training setup; every option below overrides its part. "
                      + "; ".join(f"{name}: {r['about']}" for name, r in RECIPES.items()) + "."),
    train_option("--model", "Model (see `run.py models`); names the task when --task is not given."),
    train_option("--epochs", "Maximum epochs.", type=int),
    train_option("--batch-size", "Batch size.", type=int),
    train_option("--optimizer", "Optimizer (sgd: Nesterov momentum 0.9)."),
    train_option("--lr", "Peak learning rate.", type=float),
    train_option("--weight-decay", "Decoupled weight decay (adamw, sgd).", type=float),
    train_option("--schedule", "Learning-rate schedule: cosine warms up, then follows half a cosine to 0; "
                               "plateau cuts the rate when validation stalls."),
    train_option("--warmup-epochs", "Linear warm-up of the cosine schedule.", type=int),
    train_option("--patience", "Epochs without a better validation score (RMSE, accuracy) before stopping; "
                               "the best epoch's weights are kept.", type=int),
    train_option("--augment", "Augmentation strength: flips, shifts, rotations, zoom, lighting, noise; "
                              "strong adds random erasing."),
    train_option("--augment-on", "Where augmentation runs: host (numpy, in worker threads) or device (Keras "
                                 "preprocessing layers in front of the model, on the GPU; expressions only; "
                                 "no salt-and-pepper noise there)."),
    train_option("--label-smoothing", "Expressions: label smoothing of the training loss.", type=float),
    train_option("--loss", "Keypoints: masked MSE or masked RMSE."),
    train_option("--validation", "Expressions: validate on a split of Training, or on PublicTest "
                                 "(all of Training trains)."),
    train_option("--val-fraction", "Share of Training held out for a split validation (stratified for "
                                   "expressions).", type=float),
    train_option("--ferplus-target", "FERPlus: train on the vote distribution or the majority label."),
    train_option("--class-weight", "Expressions: weight rare classes (FER2013 disgust)."),
    train_option("--weights", "vgg16_transfer: ImageNet weights (downloaded once by Keras) or untrained."),
    train_option("--strategy", "Train on several devices: mirrored uses every GPU (or every logical CPU "
                               "device) of this machine, multiworker several machines as TF_CONFIG describes "
                               "them (README); synchronous, and --batch-size stays the global batch."),
    train_option("--precision", "mixed: compute in bfloat16 with float32 weights, outputs and loss "
                                "(for GPUs with bfloat16 units)."),
    train_option("--ensemble", "Train this many runs, seeds --seed and up, and predict with their average.",
                 type=click.IntRange(min=1)),
)
PREDICT = options(
    click.option("--tta", type=click.Choice(CHOICES["tta"]), default=None,
                 help="Test-time augmentation: none, flip (average with the mirror image) or multi (ten shifted "
                      "and mirrored views).  [default: what the run's recipe says]"),
)
RUN = click.option("--run", "run_name", default="latest",
                   help="Which run: a folder name under data/runs/<slug>/ (see `run.py runs`), latest, or best "
                        "(by validation score).")


def competitions_for(task, model=None):
    """The competitions a command works on; a named --model narrows "both" to its own task."""
    if model and task == "both":
        from pipeline.models import get_spec

        task = get_spec(model).task
    return tasks_for(task)


def pipeline(root, force=False):
    from pipeline.stages import Pipeline

    quiet = click.get_current_context().find_root().params.get("quiet", False)
    return Pipeline(root, echo=click.echo, force=force, progress=not quiet)


def report(outcome):
    details = ", ".join(f"{k}={_short(v)}" for k, v in outcome.summary.items() if not isinstance(v, (dict, list)))
    click.echo(f"{outcome.task:<11} {outcome.stage:<10} {outcome.status:<6} {outcome.seconds:6.1f}s  {details}")
    return outcome


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else value


# --- stage commands ------------------------------------------------------------------------------

@cli.command("download")
@options(TASK, DOWNLOAD, SEED, FORCE)
@click.pass_obj
def download_command(root, task, source, from_path, sample_size, seed, force):
    """Put each competition's raw files in data/raw/<slug>/ (Kaggle, your files or the built-in sample)."""
    for competition in downloaded(task, from_path):
        report(pipeline(root, force).download(competition, source=source, seed=seed, sample_size=sample_size,
                                              from_path=from_path))


def downloaded(task, from_path):
    """The competitions to download; with --from and --task both, those whose files it holds."""
    competitions = tasks_for(task)
    if from_path is None or task != "both":
        return competitions
    from pipeline.download import holds_files_of

    found = [c for c in competitions if holds_files_of(c, from_path)]
    if not found:
        raise PipelineError(f"--from {from_path}: holds no files of either competition "
                            f"(expected e.g. training.csv, test.csv, IdLookupTable.csv or fer2013.csv, or archives of them)")
    return found


@cli.command("clean")
@options(TASK, CLEAN, FORCE)
@click.pass_obj
def clean_command(root, task, dropna, labels, skip_bad_rows, force):
    """Parse and validate the raw CSVs into arrays (data/interim/<slug>/)."""
    for competition in tasks_for(task):
        report(pipeline(root, force).clean(competition, dropna=dropna, labels=labels, skip_bad_rows=skip_bad_rows))


@cli.command("scale")
@options(TASK, SCALE, FORCE)
@click.pass_obj
def scale_command(root, task, keypoint_range, force):
    """Scale keypoints to [-1, 1] with a saved scaler; images stay bytes until a batch (data/processed/<slug>/)."""
    for competition in tasks_for(task):
        report(pipeline(root, force).scale(competition, keypoint_range=keypoint_range))


@cli.command("train")
@options(TASK, TRAIN, SEED, FORCE, RESUME)
@click.pass_obj
def train_command(root, task, seed, force, resume, **train_options):
    """Train a model with validation early stopping (data/runs/<slug>/<model>-<hash>/).

    Ctrl-C (or SIGTERM) stops after the current epoch with its state saved; run the same command
    with --resume to continue.
    """
    for competition in competitions_for(task, train_options["model"]):
        report(pipeline(root, force).train(competition, seed=seed, resume=resume, **train_options))


@cli.command("predict")
@options(TASK, RUN, PREDICT, FORCE)
@click.option("--batch-size", type=int, default=256, help="Prediction batch size.")
@click.pass_obj
def predict_command(root, task, run_name, tta, batch_size, force):
    """Predict the test images with a trained run (keypoints in pixels, clipped to [0, 96])."""
    for competition in tasks_for(task):
        report(pipeline(root, force).predict(competition, run=run_name, batch_size=batch_size, tta=tta))


@cli.command("submission")
@options(TASK, RUN, FORCE)
@click.pass_obj
def submission_command(root, task, run_name, force):
    """Write submissions/<slug>-<run>.csv and submissions/<slug>-latest.csv in Kaggle's format."""
    for competition in tasks_for(task):
        report(pipeline(root, force).submission(competition, run=run_name))


@cli.command("all")
@options(TASK, DOWNLOAD, CLEAN, SCALE, TRAIN, PREDICT, SEED, FORCE, RESUME)
@click.option("--submit", "upload", is_flag=True, help="Upload each submission to Kaggle at the end (checked first).")
@click.option("-m", "--message", default=None, help="Submission description; required with --submit.")
@click.pass_obj
def all_command(root, task, source, from_path, sample_size, seed, dropna, labels, skip_bad_rows, keypoint_range,
                tta, force, resume, upload, message, **train_options):
    """Run every stage for each competition; unchanged stages are skipped as cached.

    Ctrl-C (or SIGTERM) during training stops after the current epoch with its state saved; run the
    same command with --resume to continue.
    """
    if upload and not message:
        raise click.UsageError("--submit needs -m/--message")
    if upload:   # fail now rather than after hours of training
        from pipeline import kaggle_api

        if not kaggle_api.credentials_available():
            raise PipelineError(kaggle_api.NO_CREDENTIALS)
    started = time.perf_counter()
    chain = pipeline(root, force)
    competitions = competitions_for(task, train_options["model"])
    imported = downloaded(competitions[0].task if len(competitions) == 1 else task, from_path)
    for competition in competitions:
        report(chain.download(competition, source=source, seed=seed, sample_size=sample_size,
                              from_path=from_path if competition in imported else None))
        report(chain.clean(competition, dropna=dropna, labels=labels, skip_bad_rows=skip_bad_rows))
        report(chain.scale(competition, keypoint_range=keypoint_range))
        trained = report(chain.train(competition, seed=seed, resume=resume, **train_options))
        report(chain.predict(competition, tta=tta))
        written = report(chain.submission(competition))
        _print_scores(competition, trained.summary, written.summary)
        if upload:
            upload_submission(root, competition, Path(written.summary["file"]), message)
    click.echo(f"done in {time.perf_counter() - started:.1f}s")


def _print_scores(competition, metrics, written):
    if competition.task == "keypoints":
        score = (f"validation RMSE {metrics['val_rmse']:.3f} px, {metrics['val_rmse_flip']:.3f} px with flip TTA "
                 f"(predicting the mean: {metrics['baseline_rmse']:.3f} px)")
    else:
        score = (f"validation accuracy {metrics['val_accuracy']:.3f}, {metrics['val_accuracy_flip']:.3f} with flip TTA "
                 f"(majority class: {metrics['majority_accuracy']:.3f})")
    click.echo(f"{competition.task}: {score}; submission {written['file']}")


@cli.command("runs")
@TASK
@click.pass_obj
def runs_command(root, task):
    """List the trained runs, best validation score first (expressions: FER2013 and FERPlus runs apart)."""
    from pipeline.paths import Layout
    from pipeline.runs import listed, table

    for competition in tasks_for(task):
        found = listed(Layout(root).runs(competition), competition.task)
        if not found:
            click.echo(f"{competition.task} (0 runs):\n  none yet: python run.py train")
        for labels in sorted({run.labels for run in found}):   # FER2013 and FERPlus runs apart
            group = [run for run in found if run.labels == labels]
            click.echo(f"{competition.task}{f', {labels} labels' if labels else ''} ({len(group)} runs):")
            for line in table(group, competition.task):
                click.echo(line)


@cli.command("report")
@options(TASK, RUN)
@click.pass_obj
def report_command(root, task, run_name):
    """Write reports/<slug>/<run>/index.html: scores against the baseline and published results,
    learning curves, the data, and where the run fails on its validation faces."""
    for competition in tasks_for(task):
        report(pipeline(root).report(competition, run=run_name))


@cli.command("export")
@options(TASK, RUN)
@click.option("--format", "formats", type=click.Choice(["keras", "savedmodel", "onnx"]), multiple=True,
              default=["keras", "savedmodel"], help="Formats to write (repeat the option for several); a .keras "
                                                    "file is always written. onnx needs tf2onnx and onnxruntime.")
@click.pass_obj
def export_command(root, task, run_name, formats):
    """Export a run for serving (exports/<slug>/<run>/): input `image` float32 NHWC in [0, 1], output
    keypoints in pixels or class probabilities, described in metadata.json; each format is checked
    against the Keras model."""
    for competition in tasks_for(task):
        report(pipeline(root).export(competition, run=run_name, formats=formats))


@cli.command("models")
@TASK
def models_command(task):
    """List the models with their parameter counts."""
    from pipeline.models import describe

    for name, model_task, parameters, summary in describe(task):
        in_recipes = [r for r in RECIPES if RECIPES[r][model_task]["model"] == name]
        used = f" (recipes: {', '.join(in_recipes)})" if in_recipes else ""
        click.echo(f"{name:<18} {model_task:<11} {parameters:>12,}  {summary}{used}")


@cli.command("predict-image")
@click.argument("paths", nargs=-1, required=True, metavar="IMAGE...", type=click.Path(path_type=Path))
@TASK
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the annotated copies and JSON files.  [default: predictions/images/ under --root]")
@click.option("--keypoints-run", default="latest",
              help="Keypoints run: a folder name under data/runs/<slug>/ (see `run.py runs`), latest, or best.")
@click.option("--expressions-run", default="latest",
              help="Expressions run: a folder name under data/runs/<slug>/, latest, or best.")
@click.pass_obj
def predict_image_command(root, paths, task, out, keypoints_run, expressions_run):
    """Find the faces in photographs (colour or grey, any size) and predict their keypoints and expression.

    Faces are found with OpenCV's Haar cascade. For each image, OUT/<name>.jpg shows each face's box,
    keypoints and top expression, and OUT/<name>.json holds the boxes, the keypoints in the image's own
    pixels and every class probability. A file that cannot be read is reported and skipped: the exit
    code is 0 when at least one image was processed.
    """
    from pipeline import photos

    chosen = {"keypoints": keypoints_run, "expressions": expressions_run}
    predictors = {c.task: photos.load_predictor(pipeline(root).run_dir(c, chosen[c.task])) for c in tasks_for(task)}
    photos.run(paths, out or root / photos.OUT, predictors, echo=click.echo,
               warn=lambda line: click.echo(line, err=True))


# --- Kaggle submissions --------------------------------------------------------------------------

def upload_submission(root, competition, file, message):
    """Check `file` against the ids the clean stage recorded, upload it, and print Kaggle's answer."""
    from pipeline.paths import Layout
    from pipeline.submit import expected_rows, submit_file

    expected_ids, expected_header = expected_rows(competition, Layout(root).interim(competition))
    said = submit_file(competition, file, message, expected_ids, expected_header)
    click.echo(f"{competition.task}: uploaded {file}: {said}")
    click.echo(f"See its score with: python run.py submissions --task {competition.task}")


@cli.command("submit")
@click.option("--task", type=click.Choice(["keypoints", "expressions"]), required=True,
              help="Which competition to submit to.")
@click.option("--file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Submission CSV.  [default: submissions/<slug>-latest.csv]")
@click.option("-m", "--message", required=True, help="Description shown beside the submission on Kaggle.")
@click.pass_obj
def submit_command(root, task, file, message):
    """Check a submission file against the competition's format, then upload it to Kaggle.

    Nothing is uploaded when the file has a problem (wrong header, rows, ids or values).
    """
    from pipeline.competitions import COMPETITIONS
    from pipeline.paths import Layout

    competition = COMPETITIONS[task]
    file = file or Layout(root).submissions / f"{competition.slug}-latest.csv"
    upload_submission(root, competition, file, message)


@cli.command("submissions")
@TASK
def submissions_command(task):
    """List your latest Kaggle submissions with their status and scores."""
    from pipeline import kaggle_api

    for competition in tasks_for(task):
        submissions = kaggle_api.list_submissions(competition.slug)
        click.echo(f"{competition.task} ({competition.slug}):")
        for s in submissions:
            click.echo(f"  {s['date'] or '':<19}  {s['status']:<8}  public {s['publicScore'] or '-':>8}  "
                       f"private {s['privateScore'] or '-':>8}  {s['fileName'] or ''}  {s['description'] or ''}")
        if not submissions:
            click.echo("  no submissions yet")


if __name__ == "__main__":
    sys.exit(cli())

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

TASK_CHOICES = click.Choice(["keypoints", "expressions", "both"])


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
@click.pass_context
def cli(ctx, root):
    """Train models and make Kaggle submissions for Facial Keypoints Detection and FER2013.

    Each stage reads what the previous one wrote and is skipped ("cached") while its inputs and
    options are unchanged. `python run.py all` runs the whole chain.
    """
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
DOWNLOAD = options(
    click.option("--source", type=click.Choice(["auto", "kaggle", "sample"]), default="auto",
                 help="auto: files already in data/raw/<slug>/, else Kaggle if credentials exist, else the built-in sample."),
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
TRAIN = options(
    click.option("--model", default=None, help="Model name (see `run.py models`).  [default: resnet_keypoints, mini_xception]"),
    click.option("--epochs", type=int, default=None, help="Maximum epochs (early stopping usually ends sooner).  [default: 60]"),
    click.option("--batch-size", type=int, default=None, help="Batch size.  [default: the model's recipe, else 32]"),
    click.option("--val-fraction", type=float, default=None, help="Share of training rows held out for validation (stratified for expressions).  [default: 0.15]"),
    click.option("--patience", type=int, default=None, help="Early stopping patience in epochs.  [default: the model's recipe, else 10]"),
    click.option("--augment/--no-augment", default=None, help="Augment training batches (flips, shifts, rotations, zoom, lighting, noise).  [default: augment]"),
    click.option("--optimizer", type=click.Choice(["adam", "sgd", "adamax"]), default=None, help="Optimizer.  [default: adam]"),
    click.option("--lr", type=float, default=None, help="Learning rate.  [default: 1e-3]"),
    click.option("--schedule", type=click.Choice(["none", "cosine", "plateau"]), default=None, help="Learning-rate schedule.  [default: none]"),
    click.option("--loss", type=click.Choice(["mse", "rmse"]), default=None, help="Keypoints: masked MSE or masked RMSE.  [default: the model's recipe, else mse]"),
    click.option("--ferplus-target", type=click.Choice(["dist", "majority"]), default=None, help="FERPlus: train on the vote distribution or the majority label.  [default: dist]"),
    click.option("--class-weight", type=click.Choice(["none", "balanced", "sqrt"]), default=None, help="Expressions: weight rare classes (FER2013 disgust).  [default: none]"),
    click.option("--weights", type=click.Choice(["imagenet", "none"]), default=None, help="vgg16_transfer: ImageNet weights (downloaded once by Keras) or untrained.  [default: imagenet]"),
)
PREDICT = options(
    click.option("--tta", type=click.Choice(["none", "flip"]), default="none", help="Test-time augmentation: also predict mirrored images and average."),
)
RUN = click.option("--run", "run_name", default="latest", help="Which run folder under data/runs/<slug>/ to use.")

TRAIN_KEYS = ("model", "epochs", "batch_size", "val_fraction", "patience", "augment", "optimizer", "lr",
              "schedule", "loss", "ferplus_target", "class_weight", "weights")


def pipeline(root, force=False):
    from pipeline.stages import Pipeline

    return Pipeline(root, echo=click.echo, force=force)


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
def download_command(root, task, source, sample_size, seed, force):
    """Put each competition's raw files in data/raw/<slug>/ (Kaggle or the built-in sample)."""
    for competition in tasks_for(task):
        report(pipeline(root, force).download(competition, source=source, seed=seed, sample_size=sample_size))


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
    """Scale pixels to [0, 1] and keypoints to [-1, 1] with a saved scaler (data/processed/<slug>/)."""
    for competition in tasks_for(task):
        report(pipeline(root, force).scale(competition, keypoint_range=keypoint_range))


@cli.command("train")
@options(TASK, TRAIN, SEED, FORCE)
@click.option("--resume", is_flag=True, help="Continue a run stopped by Ctrl-C or SIGTERM from its last epoch (same options).")
@click.pass_obj
def train_command(root, task, seed, force, resume, **train_options):
    """Train a model with validation early stopping (data/runs/<slug>/<model>-<hash>/).

    Ctrl-C (or SIGTERM) stops after the current epoch with its state saved; run the same command
    with --resume to continue.
    """
    for competition in tasks_for(task):
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
@options(TASK, DOWNLOAD, CLEAN, SCALE, TRAIN, PREDICT, SEED, FORCE)
@click.option("--submit", "upload", is_flag=True, help="Upload each submission to Kaggle at the end (checked first).")
@click.option("-m", "--message", default=None, help="Submission description; required with --submit.")
@click.pass_obj
def all_command(root, task, source, sample_size, seed, dropna, labels, skip_bad_rows, keypoint_range, tta,
                force, upload, message, **train_options):
    """Run every stage for each competition; unchanged stages are skipped as cached."""
    if upload and not message:
        raise click.UsageError("--submit needs -m/--message")
    if upload:   # fail now rather than after hours of training
        from pipeline import kaggle_api

        if not kaggle_api.credentials_available():
            raise PipelineError(kaggle_api.NO_CREDENTIALS)
    started = time.perf_counter()
    chain = pipeline(root, force)
    for competition in tasks_for(task):
        report(chain.download(competition, source=source, seed=seed, sample_size=sample_size))
        report(chain.clean(competition, dropna=dropna, labels=labels, skip_bad_rows=skip_bad_rows))
        report(chain.scale(competition, keypoint_range=keypoint_range))
        trained = report(chain.train(competition, seed=seed, **train_options))
        report(chain.predict(competition, tta=tta))
        written = report(chain.submission(competition))
        _print_scores(competition, trained.summary, written.summary)
        if upload:
            upload_submission(root, competition, Path(written.summary["file"]), message)
    click.echo(f"done in {time.perf_counter() - started:.1f}s")


def _print_scores(competition, metrics, written):
    if competition.task == "keypoints":
        score = f"validation RMSE {metrics['val_rmse']:.3f} px (predicting the mean: {metrics['baseline_rmse']:.3f} px)"
    else:
        score = f"validation accuracy {metrics['val_accuracy']:.3f} (majority class: {metrics['majority_accuracy']:.3f})"
    click.echo(f"{competition.task}: {score}; submission {written['file']}")


@cli.command("models")
@TASK
def models_command(task):
    """List the models with their parameter counts."""
    from pipeline.models import DEFAULT_MODEL, describe

    for name, model_task, parameters, summary in describe(task):
        default = " (default)" if DEFAULT_MODEL[model_task] == name else ""
        click.echo(f"{name:<18} {model_task:<11} {parameters:>12,}  {summary}{default}")


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

"""The click commands of `python run.py`: each parses its options and calls one function of
stages.Pipeline (or of the package that owns the work), then prints what it returns."""
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from pipeline.cli.options import (CLEAN, DOWNLOAD, FORCE, ONE_TASK, PREDICT, RESUME, RUN, RUN_HELP, SCALE, SEED,
                                  TASK, TRAIN, options)
from pipeline.core import defaults
from pipeline.core.competitions import COMPETITIONS, tasks_for
from pipeline.core.errors import PipelineError
from pipeline.core.recipes import RECIPES


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


@dataclass(frozen=True)
class Session:
    """What the root command settles for every command: the project folder and how much to say."""
    root: Path
    quiet: bool = False

    def pipeline(self, force=False):
        # stages (and what it imports) only once a command runs: `run.py --help` must not load them.
        from pipeline.stages import Pipeline

        return Pipeline(self.root, echo=click.echo, force=force, progress=not self.quiet)


pass_session = click.make_pass_decorator(Session)


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
        from pipeline.core import runtime  # cheap; only --verbose needs it (pipeline/__init__ applied the defaults)

        runtime.configure(verbose=True)
    ctx.obj = Session(root.resolve(), quiet)


def said(outcome):
    click.echo(outcome.line())
    return outcome


# --- stage commands ------------------------------------------------------------------------------

@cli.command("download")
@options(TASK, DOWNLOAD, SEED, FORCE)
@pass_session
def download_command(session, task, source, from_path, sample_size, seed, force):
    """Put each competition's raw files in data/raw/<slug>/ (Kaggle, your files or the built-in sample)."""
    from pipeline.data.download import to_import  # with stages: see Session.pipeline

    chain = session.pipeline(force)
    for competition in to_import(task, from_path):
        said(chain.download(competition, source=source, seed=seed, sample_size=sample_size, from_path=from_path))


@cli.command("clean")
@options(TASK, CLEAN, FORCE)
@pass_session
def clean_command(session, task, dropna, labels, skip_bad_rows, force):
    """Parse and validate the raw CSVs into arrays (data/interim/<slug>/)."""
    for competition in tasks_for(task):
        said(session.pipeline(force).clean(competition, dropna=dropna, labels=labels, skip_bad_rows=skip_bad_rows))


@cli.command("scale")
@options(TASK, SCALE, FORCE)
@pass_session
def scale_command(session, task, keypoint_range, force):
    """Scale keypoints to [-1, 1] with a saved scaler; images stay bytes until a batch (data/processed/<slug>/)."""
    for competition in tasks_for(task):
        said(session.pipeline(force).scale(competition, keypoint_range=keypoint_range))


@cli.command("train")
@options(TASK, TRAIN, SEED, FORCE, RESUME)
@pass_session
def train_command(session, task, seed, force, resume, **train_options):
    """Train a model with validation early stopping (data/runs/<slug>/<model>-<hash>/).

    Ctrl-C (or SIGTERM) stops after the current epoch with its state saved; run the same command
    with --resume to continue.
    """
    from pipeline.stages import competitions_for  # see Session.pipeline

    for competition in competitions_for(task, train_options["model"]):
        said(session.pipeline(force).train(competition, seed=seed, resume=resume, **train_options))


@cli.command("predict")
@options(TASK, RUN, PREDICT, FORCE)
@click.option("--batch-size", type=int, default=defaults.PREDICT_BATCH_SIZE, help="Prediction batch size.")
@pass_session
def predict_command(session, task, run_name, tta, batch_size, force):
    """Predict the test images with a trained run (keypoints in pixels, clipped to [0, 96])."""
    for competition in tasks_for(task):
        said(session.pipeline(force).predict(competition, run=run_name, batch_size=batch_size, tta=tta))


@cli.command("submission")
@options(TASK, RUN, FORCE)
@pass_session
def submission_command(session, task, run_name, force):
    """Write submissions/<slug>-<run>.csv and submissions/<slug>-latest.csv in Kaggle's format."""
    for competition in tasks_for(task):
        said(session.pipeline(force).submission(competition, run=run_name))


@cli.command("stack")
@click.option("--task", type=click.Choice(list(COMPETITIONS)), required=True, help="Which competition's runs.")
@FORCE
@click.option("--runs", "run_names", required=True,
              help="Comma-separated cross-validated runs (trained with the same --folds and --seed) to stack.")
@pass_session
def stack_command(session, task, run_names, force):
    """Fit a level-2 model on cross-validated runs' out-of-fold predictions (logistic regression on the
    class probabilities, or a ridge per keypoint coordinate), score it by cross-validation beside each
    run and their plain average, and predict the test images with it (data/runs/<slug>/stack-<hash>/)."""
    names = [name.strip() for name in run_names.split(",") if name.strip()]
    said(session.pipeline(force).stack(COMPETITIONS[task], names))


@cli.command("all")
@options(TASK, DOWNLOAD, CLEAN, SCALE, TRAIN, PREDICT, SEED, FORCE, RESUME)
@click.option("--submit", "upload", is_flag=True, help="Upload each submission to Kaggle at the end (checked first).")
@click.option("-m", "--message", default=None, help="Submission description; required with --submit.")
@pass_session
def all_command(session, force, upload, message, **chain_options):
    """Run every stage for each competition; unchanged stages are skipped as cached.

    Ctrl-C (or SIGTERM) during training stops after the current epoch with its state saved; run the
    same command with --resume to continue.
    """
    if upload and not message:
        raise click.UsageError("--submit needs -m/--message")
    session.pipeline(force).all(upload=upload, message=message, **chain_options)


@cli.command("runs")
@TASK
@pass_session
def runs_command(session, task):
    """List the trained runs, best validation score first (expressions: FER2013 and FERPlus runs apart)."""
    chain = session.pipeline()
    for competition in tasks_for(task):
        for line in chain.runs_table(competition):
            click.echo(line)


@cli.command("report")
@options(TASK, RUN)
@pass_session
def report_command(session, task, run_name):
    """Write reports/<slug>/<run>/index.html: scores against the baseline and published results,
    learning curves, the data, and where the run fails on its validation faces."""
    for competition in tasks_for(task):
        said(session.pipeline().report(competition, run=run_name))


@cli.command("export")
@options(TASK, RUN)
@click.option("--format", "formats", type=click.Choice(defaults.EXPORT_FORMATS), multiple=True,
              default=defaults.EXPORT, help="Formats to write (repeat the option for several); a .keras "
                                            "file is always written. onnx needs tf2onnx and onnxruntime.")
@pass_session
def export_command(session, task, run_name, formats):
    """Export a run for serving (exports/<slug>/<run>/): input `image` float32 NHWC in [0, 1], output
    keypoints in pixels or class probabilities, described in metadata.json; each format is checked
    against the Keras model."""
    for competition in tasks_for(task):
        said(session.pipeline().export(competition, run=run_name, formats=formats))


@cli.command("models")
@TASK
def models_command(task):
    """List the models with their parameter counts."""
    from pipeline.models import describe  # builds every model: Keras only when asked

    for name, model_task, parameters, summary in describe(task):
        in_recipes = _recipes_training(name, model_task)
        used = f" (recipes: {', '.join(in_recipes)})" if in_recipes else ""
        click.echo(f"{name:<18} {model_task:<11} {parameters:>12,}  {summary}{used}")


def _recipes_training(model, task):
    """The recipes that train `model` for `task`: "fast", or "fast in mixed precision"."""
    names = []
    for name, entry in RECIPES.items():
        if entry[task]["model"] == model:
            names.append(name)
        elif entry[task].get("mixed_model") == model:
            names.append(f"{name} in mixed precision")
    return names


@cli.command("predict-image")
@click.argument("paths", nargs=-1, required=True, metavar="IMAGE...", type=click.Path(path_type=Path))
@TASK
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the annotated copies and JSON files.  [default: predictions/images/ under --root]")
@click.option("--keypoints-run", default=defaults.RUN, help=f"Keypoints run: {RUN_HELP}.")
@click.option("--expressions-run", default=defaults.RUN, help=f"Expressions run: {RUN_HELP}.")
@pass_session
def predict_image_command(session, paths, task, out, keypoints_run, expressions_run):
    """Find the faces in photographs (colour or grey, any size) and predict their keypoints and expression.

    Faces are found with OpenCV's Haar cascade. For each image, OUT/<name>.jpg shows each face's box,
    keypoints and top expression, and OUT/<name>.json holds the boxes, the keypoints in the image's own
    pixels and every class probability. A file that cannot be read is reported and skipped: the exit
    code is 0 when at least one image was processed.
    """
    session.pipeline().predict_images(paths, task, out, {"keypoints": keypoints_run, "expressions": expressions_run},
                                      warn=lambda line: click.echo(line, err=True))


def progress_bar(label, length):
    """predict-video's bar on stderr: frames done, frames/s (the item shown) and the time left."""
    return click.progressbar(length=length, label=label, file=sys.stderr, show_eta=True,
                             item_show_func=lambda rate: rate)


@cli.command("predict-video")
@click.argument("paths", nargs=-1, required=True, metavar="VIDEO...", type=click.Path(path_type=Path))
@TASK
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the annotated copies and CSV files.  [default: predictions/videos/ under --root]")
@click.option("--every", type=click.IntRange(min=1), default=defaults.EVERY,
              help="Predict every Nth frame; the frames between keep the last prediction (drawn and in the CSV, "
                   "with predicted=0).")
@click.option("--keypoints-run", default=defaults.RUN, help=f"Keypoints run: {RUN_HELP}.")
@click.option("--expressions-run", default=defaults.RUN, help=f"Expressions run: {RUN_HELP}.")
@pass_session
def predict_video_command(session, paths, task, out, every, keypoints_run, expressions_run):
    """Find, track and predict the faces of video files (any format OpenCV's FFmpeg reads), frame by frame.

    For each video, OUT/<name>.mp4 is an annotated copy with the same frames and rate, and OUT/<name>.csv
    has one row per frame and face: frame, time, face id (kept across frames by box overlap), box,
    keypoints in the video's pixels and every class probability. A file that cannot be read is reported
    and skipped: the exit code is 0 when at least one video was processed.
    """
    session.pipeline().predict_videos(paths, task, out, {"keypoints": keypoints_run, "expressions": expressions_run},
                                      every=every, progress=None if session.quiet else progress_bar,
                                      warn=lambda line: click.echo(line, err=True))


@cli.command("serve")
@TASK
@click.option("--host", default=defaults.HOST, help="Address to listen on; put a reverse proxy (TLS, "
                                                    "authentication, request limits) in front before "
                                                    "listening beyond loopback (README).")
@click.option("--port", type=click.IntRange(0, 65535), default=defaults.PORT, help="Port to listen on.")
@click.option("--keypoints-run", default=defaults.RUN, help=f"Keypoints run: {RUN_HELP}.")
@click.option("--expressions-run", default=defaults.RUN, help=f"Expressions run: {RUN_HELP}.")
@pass_session
def serve_command(session, task, host, port, keypoints_run, expressions_run):
    """Serve the trained runs over HTTP until Ctrl-C: POST /predict, GET /health, and a web page at /.

    POST /predict takes an image (multipart field `image`, several for one batch, or the raw body with an
    image content type) and answers predict-image's JSON. The page at / predicts a dropped photo or the
    camera, live. The runs are loaded once, at start.
    """
    session.pipeline().serve(task, host, port, {"keypoints": keypoints_run, "expressions": expressions_run})


# --- Kaggle submissions --------------------------------------------------------------------------

@cli.command("submit")
@ONE_TASK
@click.option("--file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Submission CSV.  [default: submissions/<slug>-latest.csv]")
@click.option("-m", "--message", required=True, help="Description shown beside the submission on Kaggle.")
@pass_session
def submit_command(session, task, file, message):
    """Check a submission file against the competition's format, then upload it to Kaggle.

    Nothing is uploaded when the file has a problem (wrong header, rows, ids or values).
    """
    session.pipeline().upload(COMPETITIONS[task], file, message)


@cli.command("submissions")
@TASK
def submissions_command(task):
    """List your latest Kaggle submissions with their status and scores."""
    from pipeline.data import kaggle_api  # see Session.pipeline

    for competition in tasks_for(task):
        for line in kaggle_api.submissions_table(competition):
            click.echo(line)

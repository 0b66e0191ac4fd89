"""report: one run's page, reports/<slug>/<run>/index.html, with its PNG plots beside it.

Readable offline (no scripts, no fonts, no network). The page shows the run's scores from its
metrics.json and test_metrics.json against the baseline and the published results, its learning
curves, a look at the data, and where the model fails on its own validation images (the rows it
was validated on in training: the same split, or PublicTest), predicted again here with the run's
test-time augmentation.
"""
import html

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix

from pipeline.core.competitions import KEYPOINT_NAMES, PRIVATE_TEST, PUBLIC_TEST
from pipeline.core.fileio import load_arrays, write_text
from pipeline.core.layout import ARRAYS, HISTORY
from pipeline.core.layout import REPORT_PAGE as PAGE
from pipeline.data.splits import load_training_data
from pipeline.inference.predict import check_same_labels
from pipeline.inference.tta import predict_keypoints, predict_probabilities
from pipeline.reporting import plots
# Published results, for scale. They are test scores on Kaggle's or the papers' data, not on this
# run's validation rows.
PUBLISHED = {
    "keypoints": [("reference keypoints CNN, Kaggle leaderboard", 3.41),
                  ("the competition's best, Kaggle leaderboard", 1.28)],
    "fer2013": [("mini-Xception (Arriaga et al. 2017), PrivateTest", 0.65),
                ("2013 winner (Tang), PrivateTest", 0.712),
                ("best single network (Khaireddin & Chen 2021), PrivateTest", 0.733)],
    "ferplus": [("VGG13 (Barsoum et al. 2016), FERPlus test", 0.85),
                ("recent work, FERPlus test", 0.90)],
}
GRID = 16          # faces in each grid
EXAMPLES_PER_CLASS = 8


def build(competition, run, processed, out_dir, echo=print):
    """Write the report of `run` (a RunDir) into `out_dir`; returns a summary for the stage line."""
    params = run.params
    task = competition.task
    if task == "expressions":
        check_same_labels(run, processed)
    if run.is_stack:   # no model of its own: its scores and members
        table = metrics_table(task, run.labels or "keypoints", run.metrics, run.test_metrics, run.tta)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / PAGE, _page(f"{task}: stack {run.name}", params, table, [_stack(run)]))
        return {"run": run.name, "page": str(out_dir / PAGE), "images": 0}
    data = load_training_data(task, processed, params)
    models = run.load_models()
    tta = run.tta
    out_dir.mkdir(parents=True, exist_ok=True)

    echo(f"{task}: report: learning curves")
    sections = [_learning_curves(run, out_dir, params)]
    if task == "keypoints":
        sections += _keypoints(models, data, run.scaling, tta, params, out_dir, echo)
        labels = "keypoints"
    else:
        labels = run.labels
        sections += _expressions(models, data, tta, params, processed, out_dir, echo)
    table = metrics_table(task, labels, run.metrics, run.test_metrics, tta)
    page = _page(f"{task}: run {run.name}", params, table, sections)
    write_text(out_dir / PAGE, page)
    return {"run": run.name, "page": str(out_dir / PAGE),
            "images": len(list(out_dir.glob("*.png")))}


# --- the metrics table ---------------------------------------------------------------------------

def metrics_table(task, labels, metrics, test, tta):
    """Rows (what, value as printed, note) of the run's scores, its baseline and the published ones."""
    if task == "keypoints":
        rows = [(f"validation RMSE (px), TTA {name}", metrics[key], "this run")
                for name, key in (("none", "val_rmse"), ("flip", "val_rmse_flip"), ("multi", "val_rmse_multi"))
                if key in metrics]
        rows.append(("predicting the training mean (px)", metrics["baseline_rmse"], "baseline"))
        published = PUBLISHED["keypoints"]
    else:
        rows = [(f"validation accuracy, TTA {name}", metrics[key], "this run")
                for name, key in (("none", "val_accuracy"), ("flip", "val_accuracy_flip"),
                                  ("multi", "val_accuracy_multi")) if key in metrics]
        scored = (("", ""), ("_unseen", ", faces without a pixel copy in Training"),
                  ("_plurality", ", every face whose most voted column is an emotion"),
                  ("_plurality_unseen", ", plurality labels, faces without a copy in Training"))
        rows += [(f"{usage} accuracy, TTA {test.get('tta', tta)}{which}", test[key + suffix], "this run")
                 for suffix, which in scored
                 for usage, key in (("PublicTest", "public_test_accuracy"), ("PrivateTest", "private_test_accuracy"))
                 if key + suffix in test]
        rows.append(("predicting the majority class", metrics["majority_accuracy"], "baseline"))
        published = PUBLISHED[labels]
    return [(what, f"{value:.4f}", note) for what, value, note in rows] + \
           [(what, f"{value:.4g}", "published") for what, value in published]


# --- sections --------------------------------------------------------------------------------------

def _stack(run):
    """A stack's members and what stacking them bought: out of fold on the training rows, and for
    expressions on PublicTest and PrivateTest (scored, never used to choose)."""
    metrics, cv, test = run.metrics, run.cross_validation, run.test_metrics
    members = test.get("members", {})
    rows = [(f"member {name}", value, members.get(name, {})) for name, value in metrics["members"].items()]
    rows += [("their plain average", metrics["average"], test.get("average", {})),
             (f"the stack ({metrics['stacker']}), {cv['folds']}-fold CV", cv["oof"], test)]
    columns = [(usage, key) for usage, key in (("PublicTest", "public_test_accuracy"),
                                               ("PrivateTest", "private_test_accuracy")) if key in test]
    header = "".join(f"<th>{usage}</th>" for usage, _ in columns)
    cells = "".join(f"<tr><td>{html.escape(what)}</td><td class='n'>{value:.4f}</td>"
                    + "".join(f"<td class='n'>{scores[key]:.4f}</td>" if key in scores else "<td></td>"
                              for _, key in columns) + "</tr>"
                    for what, value, scores in rows)
    tests = ", and the test scores beside them" if columns else ""
    return ("Stack", "<p>Out-of-fold scores on the training rows (each prediction by a model that did not "
                     f"train on the row){tests}.</p>"
                     f"<table><tr><th>what</th><th>{html.escape(cv['metric'])}, out of fold</th>{header}</tr>"
                     f"{cells}</table>")


def _learning_curves(run, out_dir, params):
    history = pd.read_csv(run.path / HISTORY) if (run.path / HISTORY).exists() else None
    if history is None:   # an ensemble: its members have the curves
        return ("Learning curves", "<p>An ensemble: see its members' reports.</p>")
    plots.plot_history(history, out_dir / "curves.png", title=params["model"])
    return ("Learning curves", _image("curves.png", "training and validation loss per epoch"))


def _keypoints(models, data, run_scaling, tta, params, out_dir, echo):
    echo("keypoints: report: predicting the validation faces")
    predicted = predict_keypoints(models, data.val_x, run_scaling, params["batch_size"], tta)
    truth = data.scaling.inverse_transform(data.val_y)
    squared = (predicted - truth) ** 2
    per_image = np.sqrt(np.nanmean(squared, axis=1))
    per_keypoint = np.sqrt(np.nanmean(squared[:, 0::2] + squared[:, 1::2], axis=0) / 2)

    echo("keypoints: report: plots")
    train_y = np.concatenate([data.train_y, data.val_y])   # every row of training.csv
    has = (~np.isnan(train_y[:, 0::2])).sum(axis=0)
    plots.bars(KEYPOINT_NAMES, has, out_dir / "keypoint_counts.png", "training rows with each keypoint", "rows")
    labelled = data.scaling.inverse_transform(data.train_y[:GRID])
    plots.face_grid(data.train_x[:GRID], out_dir / "training_faces.png", truth=labelled)
    plots.face_grid(data.val_x[:GRID], out_dir / "validation_faces.png", truth=truth[:GRID],
                    predicted=predicted[:GRID], captions=[f"{e:.2f} px" for e in per_image[:GRID]])
    worst = np.argsort(per_image)[::-1][:GRID]
    plots.face_grid(data.val_x[worst], out_dir / "worst_faces.png", truth=truth[worst], predicted=predicted[worst],
                    captions=[f"{per_image[i]:.2f} px" for i in worst])
    plots.bars(KEYPOINT_NAMES, per_keypoint, out_dir / "keypoint_rmse.png",
               f"validation RMSE per keypoint (TTA {tta})", "RMSE (px)")
    return [
        ("The data", f"<p>{len(train_y):,} training rows; {int(has.min()):,} to {int(has.max()):,} carry each "
                     "keypoint.</p>" + _image("keypoint_counts.png", "training rows with each keypoint")
                     + "<p>Training faces with their labelled keypoints:</p>"
                     + _image("training_faces.png", "training faces with labelled keypoints")),
        ("Validation faces", f"<p>True keypoints in green, predicted in red (TTA {tta}); the caption is the "
                             "face's RMSE.</p>" + _image("validation_faces.png", "validation faces")),
        (f"The {GRID} worst validation faces", _image("worst_faces.png", "worst validation faces by RMSE")),
        ("RMSE per keypoint", _image("keypoint_rmse.png", "validation RMSE per keypoint")),
    ]


def _expressions(models, data, tta, params, processed, out_dir, echo):
    classes = list(data.classes)
    echo("expressions: report: predicting the validation faces")
    probabilities = predict_probabilities(models, data.val_x, params["batch_size"], tta)
    guess = probabilities.argmax(axis=1)
    matrix = confusion_matrix(data.val_labels, guess, labels=range(len(classes)), normalize="true")
    per_class = classification_report(data.val_labels, guess, labels=range(len(classes)), target_names=classes,
                                      output_dict=True, zero_division=0)

    echo("expressions: report: plots")
    arrays = load_arrays(processed / ARRAYS, keys=("train_labels", "test_usage", "test_labels"))
    counts = {"Training": np.bincount(arrays["train_labels"], minlength=len(classes))}
    for usage, code in (("PublicTest", PUBLIC_TEST), ("PrivateTest", PRIVATE_TEST)):
        rows = (arrays["test_usage"] == code) & (arrays["test_labels"] >= 0)
        if rows.any():
            counts[usage] = np.bincount(arrays["test_labels"][rows], minlength=len(classes))
    plots.grouped_counts(counts, classes, out_dir / "class_counts.png", "images per class and Usage")
    examples = [np.flatnonzero(data.train_labels == c)[:EXAMPLES_PER_CLASS] for c in range(len(classes))]
    shown = np.concatenate(examples)
    plots.face_grid(data.train_x[shown], out_dir / "examples.png", columns=EXAMPLES_PER_CLASS,
                    captions=[classes[data.train_labels[i]] for i in shown])
    plots.confusion(matrix, classes, out_dir / "confusion.png", f"validation, TTA {tta} (rows sum to 1)")
    wrong = np.flatnonzero(guess != data.val_labels)
    confident = wrong[np.argsort(probabilities[wrong, guess[wrong]])[::-1][:GRID]]
    plots.face_grid(data.val_x[confident], out_dir / "mistakes.png",
                    captions=[f"{classes[data.val_labels[i]]} as {classes[guess[i]]} {probabilities[i, guess[i]]:.2f}"
                              for i in confident])
    return [
        ("The data", _image("class_counts.png", "class counts per Usage") + "<p>Training faces per class:</p>"
                     + _image("examples.png", "example training faces per class")),
        ("Confusion matrix", _image("confusion.png", "normalised confusion matrix")),
        ("Per class", _class_table(per_class, classes)),
        (f"The {len(confident)} most confident mistakes",
         "<p>Caption: true class as predicted class, with the predicted probability.</p>"
         + _image("mistakes.png", "most confident mistakes")),
    ]


# --- HTML ------------------------------------------------------------------------------------------

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}h2{margin-top:1.6em}
.published{color:#666}"""


def _image(name, alt):
    return f'<p><img src="{name}" alt="{html.escape(alt)}"></p>'


def _class_table(report, classes):
    rows = "".join(f"<tr><td>{html.escape(c)}</td>" + "".join(f'<td class="n">{report[c][k]:.3f}</td>'
                                                              for k in ("precision", "recall", "f1-score"))
                   + f'<td class="n">{int(report[c]["support"])}</td></tr>' for c in classes)
    return ("<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>images</th></tr>"
            f"{rows}</table><p>Accuracy {report['accuracy']:.4f}; macro F1 {report['macro avg']['f1-score']:.3f}.</p>")


def _page(title, params, table, sections):
    rows = "".join(f'<tr class="{note}"><td>{html.escape(what)}</td><td class="n">{value}</td><td>{note}</td></tr>'
                   for what, value, note in table)
    options = ", ".join(f"{k} {v}" for k, v in params.items())
    body = "".join(f"<h2>{html.escape(heading)}</h2>\n{content}\n" for heading, content in sections)
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p>{html.escape(options)}</p>\n<h2>Scores</h2>\n<table><tr><th>what</th><th>value</th><th></th></tr>"
            f"{rows}</table>\n{body}</body></html>\n")

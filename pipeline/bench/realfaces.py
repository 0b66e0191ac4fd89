"""Keypoints on real faces: a Facial-Keypoints-Detection replica built from teacher labels.

    python -m pipeline.bench fkd-replica --shared ../shared/data --out /tmp/fkd
        writes training.csv, test.csv, IdLookupTable.csv, SampleSubmission.csv in Kaggle's layout
        and solution.csv (the teacher's answer for every RowId), from fer2013-keypoints-dev.npz
        (15 keypoints of real FER2013 faces upscaled to 96x96 by a 68-point landmark model; its
        README says how) and the FER2013 pixels. Then:
            python run.py download --from /tmp/fkd --task keypoints && python run.py all --task keypoints
    python -m pipeline.bench score-keypoints --solution /tmp/fkd/solution.csv submissions/facial-...csv
        Kaggle's RMSE of a submission against solution.csv, over all rows and over the faces the
        teacher's face detector boxed upright (its cleanest labels).

The faces are those the teacher's detector boxed upright, labelled with the mean of the teacher's
two labellings (the face and its mirror image), unless --all-faces. Like the competition: training.csv has 7,049 Training faces, 2,140 of them with all 30 targets and
the rest with the 4 keypoints most rows carry (left/right eye centre, nose tip, bottom lip). Test
faces are PublicTest faces whose pixels occur nowhere in Training (the README's advice: 263 exact
copies would leak), and every test face asks all 30 features.
"""
import io
import lzma
from pathlib import Path

import click
import numpy as np

from pipeline.core.competitions import KEYPOINT_COLUMNS, PARTIAL_KEYPOINTS

from pipeline.bench import cli

FER_SLUG = "challenges-in-representation-learning-facial-expression-recognition-challenge"
TRAINING_ROWS, COMPLETE_ROWS = 7049, 2140   # as in the real training.csv
UPRIGHT_DETECTOR = 0                        # box_method of the cleanest teacher labels


def load_teacher(shared, all_faces=False):
    """(faces (K, 96, 96) uint8, keypoints (K, 30), usage (K,), box_method (K,), pixels48 (K, 2304)).

    By default only the faces the upright detector boxed, each labelled with the mean of its two
    labellings (the face and its mirror image): the labels' README recommends both for clean
    targets (flip-consistency 1.6 px there against 2.7 px over all faces). all_faces keeps every
    face with its first labelling.
    """
    from PIL import Image  # this benchmark's own: `bench --help` loads none of them

    labels = dict(np.load(Path(shared) / "fer2013-keypoints" / "fer2013-keypoints-dev.npz"))
    keypoints = labels["keypoints"]
    if not all_faces:
        mean = (labels["keypoints"] + labels["keypoints_flip"]) / 2
        # The labels' own check, on the mean: every value inside the image.
        kept = (labels["box_method"] == UPRIGHT_DETECTOR) & ((mean >= 0) & (mean < 96)).all(axis=1)
        labels = {name: values[kept] for name, values in labels.items()}
        keypoints = mean[kept]
    packed = (Path(shared) / FER_SLUG / "fer2013-arrays.npz.xz").read_bytes()
    fer = np.load(io.BytesIO(lzma.decompress(packed)))
    small = fer["pixels"][labels["index"]]
    # Exactly as the labels were made: Pillow's bicubic upscale of the 48x48 face.
    faces = np.stack([np.asarray(Image.fromarray(face).resize((96, 96), Image.BICUBIC)) for face in small])
    return faces, keypoints, labels["usage"], labels["box_method"], small.reshape(len(small), -1)


def replica(faces, keypoints, usage, box_method, pixels48, seed=0):
    """(training frame, test frame, lookup frame, solution frame) in Kaggle's layout."""
    import pandas as pd  # this benchmark's own: `bench --help` loads none of them

    rng = np.random.default_rng(seed)
    train = np.flatnonzero(usage == 0)
    train = np.sort(rng.choice(train, size=min(TRAINING_ROWS, len(train)), replace=False))
    targets = keypoints[train].astype(np.float64).copy()
    partial = np.ones(len(train), bool)
    partial[rng.choice(len(train), size=min(COMPLETE_ROWS, len(train)), replace=False)] = False
    kept = [KEYPOINT_COLUMNS.index(f"{name}_{axis}") for name in PARTIAL_KEYPOINTS for axis in "xy"]
    dropped = np.setdiff1d(np.arange(len(KEYPOINT_COLUMNS)), kept)
    targets[np.ix_(partial, dropped)] = np.nan
    training = pd.DataFrame(np.round(targets, 4), columns=list(KEYPOINT_COLUMNS))
    training["Image"] = _image_strings(faces[train])

    seen = {row.tobytes() for row in pixels48[usage == 0]}
    test = np.array([i for i in np.flatnonzero(usage == 1) if pixels48[i].tobytes() not in seen])
    image_ids = np.arange(1, len(test) + 1)
    test_frame = pd.DataFrame({"ImageId": image_ids, "Image": _image_strings(faces[test])})
    features = len(KEYPOINT_COLUMNS)
    lookup = pd.DataFrame({"RowId": np.arange(1, len(test) * features + 1),
                           "ImageId": np.repeat(image_ids, features),
                           "FeatureName": np.tile(KEYPOINT_COLUMNS, len(test)), "Location": ""})
    solution = pd.DataFrame({"RowId": lookup.RowId, "Location": np.round(keypoints[test].ravel(), 4),
                             "BoxMethod": np.repeat(box_method[test], features)})
    return training, test_frame, lookup, solution


def _image_strings(faces):
    return [" ".join(map(str, face.ravel().tolist())) for face in faces]


def score(solution, submission):
    """{"rmse": over every RowId, "rmse_upright": over faces boxed by the upright detector}."""
    merged = solution.merge(submission, on="RowId", suffixes=("", "_predicted"), validate="one_to_one")
    if len(merged) != len(solution):
        raise click.ClickException(f"the submission answers {len(merged)} of {len(solution)} RowIds")
    error = (merged.Location_predicted - merged.Location).to_numpy()
    upright = merged.BoxMethod.to_numpy() == UPRIGHT_DETECTOR
    return {"rmse": float(np.sqrt(np.mean(error ** 2))), "rmse_upright": float(np.sqrt(np.mean(error[upright] ** 2)))}


@cli.command("fkd-replica")
@click.option("--shared", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("../shared/data"),
              show_default=True, help="Folder holding fer2013-keypoints/ and the FER2013 arrays.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--all-faces", is_flag=True,
              help="Every labelled face with its first labelling, instead of the upright-boxed faces with "
                   "both labellings averaged (the cleaner targets).")
def replica_command(shared, out, seed, all_faces):
    """Write a Facial-Keypoints-Detection replica of real faces with teacher labels."""
    training, test, lookup, solution = replica(*load_teacher(shared, all_faces), seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    training.to_csv(out / "training.csv", index=False)
    test.to_csv(out / "test.csv", index=False)
    lookup.to_csv(out / "IdLookupTable.csv", index=False)
    lookup[["RowId"]].assign(Location=0).to_csv(out / "SampleSubmission.csv", index=False)
    solution.to_csv(out / "solution.csv", index=False)
    complete = int(training[list(KEYPOINT_COLUMNS)].notna().all(axis=1).sum())
    click.echo(f"{out}: training.csv {len(training)} faces ({complete} complete), test.csv {len(test)} faces, "
               f"IdLookupTable.csv {len(lookup)} rows, solution.csv")


@cli.command("score-keypoints")
@click.option("--solution", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.argument("submission", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def score_command(solution, submission):
    """RMSE of a keypoints submission against a replica's solution.csv."""
    import pandas as pd  # this benchmark's own: `bench --help` loads none of them

    scores = score(pd.read_csv(solution), pd.read_csv(submission))
    click.echo(f"rmse={scores['rmse']:.3f} rmse_upright={scores['rmse_upright']:.3f}  ({submission.name})")

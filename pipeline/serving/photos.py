"""photos: find the faces in ordinary photographs and run trained keypoints and expressions runs on them
(the faces themselves: faces.py).

For each photograph, `run` writes <stem>.jpg (box, keypoints, top expression drawn on a copy) and
<stem>.json (every face's box, crop, named keypoints and class probabilities) into the output folder.
"""
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.errors import BadInputError, PipelineError
from pipeline.core.fileio import atomic_open, write_json
from pipeline.serving.faces import annotate, describe_faces


def read_photo(path):
    """(h, w, 3) uint8 BGR of any image file OpenCV decodes (grey ones too), turned as its EXIF says."""
    try:
        data = np.fromfile(path, np.uint8)   # not cv2.imread: it says nothing about why it failed
    except OSError as error:
        raise BadInputError(f"{path}: cannot read it: {error.strerror or error}") from None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:   # e.g. dimensions beyond OpenCV's limits
        image = None
    if image is None:
        raise BadInputError(f"{path}: not an image file OpenCV can decode")
    return image


def describe_photo(shape, faces, source, predictors):
    """predict-image's JSON for an image of `shape` (h, w, ...) and its answered faces; the server
    answers the same."""
    return {"image": str(source), "width": int(shape[1]), "height": int(shape[0]),
            "runs": {task: predictor.run for task, predictor in predictors.items()}, "faces": faces}


def write_jpeg(path, image):
    encoded, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not encoded:
        raise PipelineError(f"cannot encode {path} as JPEG")   # our output, not the user's input
    with atomic_open(path, "wb") as handle:
        handle.write(data.tobytes())


def predict_photo(path, out, stem, predictors):
    """Detect, predict and write out/<stem>.jpg and out/<stem>.json for one photograph; its faces."""
    image = read_photo(path)
    faces = describe_faces(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), predictors)
    write_jpeg(out / f"{stem}.jpg", annotate(image, faces))
    write_json(out / f"{stem}.json", describe_photo(image.shape, faces, path, predictors))
    return faces


def output_stems(paths):
    """One output name per input path: its stem, with -2, -3, ... for stems met before (a/x.jpg, b/x.png)."""
    stems, seen = [], {}
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def run(paths, out, predictors, echo=print, warn=None):
    """Predict each photograph in `paths` into the folder `out`, one line each. A file that cannot be
    read is reported (`warn`) and skipped; BadInputError only if none could be processed."""
    warn = warn or echo
    for task, predictor in predictors.items():
        echo(f"{task}: run {predictor.run} (tta {predictor.tta})")
    counts = {"images": 0, "faces": 0, "failed": 0}
    for path, stem in zip(paths, output_stems(paths)):
        try:
            faces = predict_photo(Path(path), Path(out), stem, predictors)
        except BadInputError as error:
            warn(f"{error}; skipped")
            counts["failed"] += 1
            continue
        counts["images"] += 1
        counts["faces"] += len(faces)
        echo(f"{path}: {_said(faces)} -> {Path(out) / stem}.jpg, .json")
    if not counts["images"]:
        raise BadInputError(f"none of the {len(paths)} images could be read")
    return counts


def _said(faces):
    if not faces:
        return "no face found"
    found = f"{len(faces)} face{'s' if len(faces) > 1 else ''}"
    expressions = [f"{face['expression']} {face['probabilities'][face['expression']]:.0%}"
                   for face in faces if "expression" in face]
    return found + (f" ({', '.join(expressions)})" if expressions else "")

"""scale: pixels to float32 in [0, 1]; keypoints to [-1, 1] by a fitted scaler saved with joblib.

The scaler is a scikit-learn MinMaxScaler (NaN-aware), so predictions are always mapped back with
`inverse_transform` of the very object that scaled the targets. Two ranges:
- "image": fitted on the image bounds 0..96, i.e. the reference (y - 48) / 48 for every column;
- "data": fitted on the training keypoints, each column's observed min..max to -1..1.
"""
import numpy as np

from .fileio import atomic_path, load_arrays, read_json, save_arrays, write_json

ARRAYS = "arrays.npz"
SCALER = "scaler.joblib"
META = "meta.json"


def outputs(competition, folder):
    names = [ARRAYS, META] + ([SCALER] if competition.task == "keypoints" else [])
    return [folder / name for name in names]


def pixels_to_unit(images):
    """(n, h, w) uint8 -> (n, h, w, 1) float32 in [0, 1]."""
    return (images.astype(np.float32) / np.float32(255))[..., None]


def fit_keypoint_scaler(keypoints, keypoint_range="image"):
    from sklearn.preprocessing import MinMaxScaler

    scaler = MinMaxScaler(feature_range=(-1, 1))
    if keypoint_range == "image":
        bounds = np.repeat([[0.0], [96.0]], keypoints.shape[1], axis=1)
        return scaler.fit(bounds)
    if keypoint_range == "data":
        return scaler.fit(keypoints)
    raise ValueError(f"unknown keypoint range {keypoint_range!r}")


def save_scaler(scaler, path):
    import joblib

    with atomic_path(path) as tmp:
        joblib.dump(scaler, tmp)


def load_scaler(path):
    """Load a scaler written by this project. joblib files run code when loaded: only ever pass a
    path inside the project's own data/ folder, never a file from elsewhere."""
    import joblib

    return joblib.load(path)


def run(competition, interim, out, keypoint_range="image"):
    arrays = load_arrays(interim / "clean.npz")
    meta = read_json(interim / "meta.json")
    scaled = {"train_x": pixels_to_unit(arrays["train_images"]), "test_x": pixels_to_unit(arrays["test_images"])}
    if competition.task == "keypoints":
        scaler = fit_keypoint_scaler(arrays["train_keypoints"], keypoint_range)
        scaled["train_y"] = scaler.transform(arrays["train_keypoints"]).astype(np.float32)
        scaled["test_ids"] = arrays["test_ids"]
        save_scaler(scaler, out / SCALER)
    else:
        for key in ("train_labels", "train_distribution", "test_labels", "test_usage"):
            scaled[key] = arrays[key]
    save_arrays(out / ARRAYS, **scaled)
    write_json(out / META, meta)
    return {"train_rows": int(len(scaled["train_x"])), "test_rows": int(len(scaled["test_x"])),
            "pixel_range": [float(scaled["train_x"].min()), float(scaled["train_x"].max())]}

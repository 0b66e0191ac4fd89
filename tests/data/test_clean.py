import numpy as np
import pandas as pd
import pytest

from pipeline.data import clean
from pipeline.core.competitions import EXPRESSIONS, FERPLUS_CLASSES, KEYPOINTS
from pipeline.core.errors import BadInputError
from pipeline.core.fileio import load_arrays, read_json
from pipeline.core import layout


def test_keypoints_keep_partial_rows_with_nan_mask(keypoints_raw, tmp_path):
    summary = clean.run(KEYPOINTS, keypoints_raw, tmp_path / "out")
    arrays = load_arrays(tmp_path / "out" / layout.CLEAN_ARRAYS)
    train = pd.read_csv(keypoints_raw / "training.csv")
    assert arrays["train_images"].shape == (len(train), 96, 96)
    assert arrays["train_images"].dtype == np.uint8
    np.testing.assert_array_equal(np.isnan(arrays["train_keypoints"]), train.iloc[:, :30].isna().to_numpy())
    assert summary["complete_rows"] == train.iloc[:, :30].notna().all(axis=1).sum()


def test_dropna_keeps_only_complete_rows(keypoints_raw, tmp_path):
    summary = clean.run(KEYPOINTS, keypoints_raw, tmp_path / "out", dropna=True)
    arrays = load_arrays(tmp_path / "out" / layout.CLEAN_ARRAYS)
    assert not np.isnan(arrays["train_keypoints"]).any()
    assert summary["train_rows"] == summary["complete_rows"] > 0


def test_lookup_and_test_ids_are_kept(keypoints_raw, tmp_path):
    clean.run(KEYPOINTS, keypoints_raw, tmp_path / "out")
    lookup = pd.read_csv(tmp_path / "out" / layout.LOOKUP)
    raw_lookup = pd.read_csv(keypoints_raw / "IdLookupTable.csv")
    assert lookup.RowId.tolist() == raw_lookup.RowId.tolist()
    assert load_arrays(tmp_path / "out" / layout.CLEAN_ARRAYS)["test_ids"].tolist() == pd.read_csv(keypoints_raw / "test.csv").ImageId.tolist()


def test_bad_pixel_row_names_file_and_line(keypoints_raw, tmp_path):
    train = pd.read_csv(keypoints_raw / "training.csv")
    train.loc[4, "Image"] = train.loc[4, "Image"].rsplit(" ", 1)[0]   # one pixel short
    train.to_csv(keypoints_raw / "training.csv", index=False)
    with pytest.raises(BadInputError) as error:
        clean.run(KEYPOINTS, keypoints_raw, tmp_path / "out")
    assert "training.csv: pixels wrong count on line 6" in str(error.value)
    assert error.value.exit_code == 2
    assert not (tmp_path / "out" / layout.CLEAN_ARRAYS).exists()
    summary = clean.run(KEYPOINTS, keypoints_raw, tmp_path / "out", skip_bad_rows=True)
    assert summary["train_rows"] == len(train) - 1 and summary["skipped_bad_rows"] == 1


def test_fer2013_split_by_usage(expressions_raw, tmp_path):
    summary = clean.run(EXPRESSIONS, expressions_raw, tmp_path / "out")
    arrays = load_arrays(tmp_path / "out" / layout.CLEAN_ARRAYS)
    fer = pd.read_csv(expressions_raw / "fer2013.csv")
    training = fer.Usage == "Training"
    assert summary["train_rows"] == training.sum()
    np.testing.assert_array_equal(arrays["train_labels"], fer.emotion[training])
    np.testing.assert_array_equal(arrays["test_labels"], fer.emotion[~training])
    assert arrays["test_images"].shape == ((~training).sum(), 48, 48)


def test_icml_layout_with_padded_column_names(expressions_raw, tmp_path):
    fer = pd.read_csv(expressions_raw / "fer2013.csv")
    (expressions_raw / "fer2013.csv").unlink()
    fer[["emotion", "Usage", "pixels"]].rename(columns={"Usage": " Usage", "pixels": " pixels"}).to_csv(
        expressions_raw / "icml_face_data.csv", index=False)
    summary = clean.run(EXPRESSIONS, expressions_raw, tmp_path / "out")
    assert summary["train_rows"] == (fer.Usage == "Training").sum()


def test_train_test_layout(expressions_raw, tmp_path):
    fer = pd.read_csv(expressions_raw / "fer2013.csv")
    (expressions_raw / "fer2013.csv").unlink()
    fer[fer.Usage == "Training"][["emotion", "pixels"]].to_csv(expressions_raw / "train.csv", index=False)
    fer[fer.Usage != "Training"][["pixels"]].to_csv(expressions_raw / "test.csv", index=False)
    pd.DataFrame({"Id": [1], "Emotion": [0]}).to_csv(expressions_raw / "example_submission.csv", index=False)
    summary = clean.run(EXPRESSIONS, expressions_raw, tmp_path / "out")
    assert summary["test_rows"] == (fer.Usage != "Training").sum()
    assert read_json(tmp_path / "out" / layout.META)["submission_header"] == "Id,Emotion"


def test_ferplus_majority_vote():
    #            neutral happy surprise sad anger disgust fear contempt unknown NF
    votes = [[6, 4, 0, 0, 0, 0, 0, 0, 0, 0],     # neutral
             [0, 5, 5, 0, 0, 0, 0, 0, 0, 0],     # tie -> first column (happiness)
             [1, 0, 0, 0, 0, 0, 0, 0, 9, 0],     # unknown -> unusable
             [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],    # not a face -> unusable
             [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],     # no votes -> unusable
             [0, 0, 0, 0, 0, 0, 0, 7, 3, 0]]     # contempt
    label, distribution, usable = clean.ferplus_majority(votes)
    assert usable.tolist() == [True, True, False, False, False, True]
    assert label.tolist() == [0, 1, -1, -1, -1, FERPLUS_CLASSES.index("contempt")]
    np.testing.assert_allclose(distribution[0], [0.6, 0.4, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(distribution[5], [0, 0, 0, 0, 0, 0, 0, 1])


def test_ferplus_test_labels_follow_ferplus_own_reader():
    #            neutral happy surprise sad anger disgust fear contempt unknown NF
    votes = [[5, 1, 1, 1, 1, 1, 0, 0, 0, 0],     # single votes dropped: 5 of 5 -> neutral
             [4, 3, 3, 0, 0, 0, 0, 0, 0, 0],     # 4 of 10 is no majority -> not scored
             [0, 5, 5, 0, 0, 0, 0, 0, 0, 0],     # a tie is no majority
             [0, 0, 6, 0, 0, 0, 0, 0, 4, 0],     # 6 of 10 -> surprise
             [0, 0, 4, 0, 0, 0, 0, 0, 3, 3],     # 4 of 10: unknown and NF votes count in the total
             [0, 0, 0, 0, 0, 0, 0, 0, 9, 1],     # unknown -> not scored
             [0, 0, 0, 0, 0, 0, 0, 0, 2, 8],     # not a face -> not scored
             [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],     # no votes
             [0, 0, 0, 0, 0, 0, 0, 6, 2, 2]]     # contempt
    assert clean.ferplus_test_labels(votes).tolist() == [0, -1, -1, 2, -1, -1, -1, -1, FERPLUS_CLASSES.index("contempt")]
    label, _, _ = clean.ferplus_majority(votes)   # training's plurality labels the first two rows
    assert label.tolist()[:2] == [0, 0]


def test_ferplus_test_rows_are_scored_by_ferplus_rule_and_by_plurality(expressions_raw, tmp_path):
    summary = clean.run(EXPRESSIONS, expressions_raw, tmp_path / "out", labels="ferplus")
    arrays = load_arrays(tmp_path / "out" / layout.CLEAN_ARRAYS)
    test = (pd.read_csv(expressions_raw / "fer2013.csv").Usage != "Training").to_numpy()
    votes = pd.read_csv(expressions_raw / "fer2013new.csv").iloc[:, 2:].to_numpy()
    rule, plurality = clean.ferplus_test_labels(votes)[test], clean.ferplus_majority(votes)[0][test]
    np.testing.assert_array_equal(arrays["test_labels"], rule)
    np.testing.assert_array_equal(arrays["test_plurality_labels"], plurality)
    assert summary["scored_test_rows"] == (rule >= 0).sum() < (plurality >= 0).sum()
    fer2013 = clean.run(EXPRESSIONS, expressions_raw, tmp_path / "fer2013")
    assert "test_plurality_labels" not in load_arrays(tmp_path / "fer2013" / layout.CLEAN_ARRAYS)
    assert "scored_test_rows" not in fer2013   # FER2013's meta.json, hence its runs' names, unchanged


def test_ferplus_labels_drop_unusable_training_rows_only(expressions_raw, tmp_path):
    summary = clean.run(EXPRESSIONS, expressions_raw, tmp_path / "out", labels="ferplus")
    arrays = load_arrays(tmp_path / "out" / layout.CLEAN_ARRAYS)
    fer = pd.read_csv(expressions_raw / "fer2013.csv")
    _, _, usable = clean.ferplus_majority(pd.read_csv(expressions_raw / "fer2013new.csv").iloc[:, 2:].to_numpy())
    assert summary["train_rows"] == ((fer.Usage == "Training") & usable).sum()
    assert len(arrays["test_images"]) == (fer.Usage != "Training").sum()   # never dropped
    np.testing.assert_allclose(arrays["train_distribution"].sum(axis=1), 1, rtol=1e-6)
    assert read_json(tmp_path / "out" / layout.META)["classes"] == list(FERPLUS_CLASSES)

"""submit: a submission is checked against the competition's format before anything is uploaded."""
import pytest
from hypothesis import given, settings, strategies as st

from kaggle_server import KaggleServer, point_client_at
from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.core.errors import BadInputError, MissingInputError
from pipeline.data.kaggle_api import KaggleError
from pipeline.inference.submit import expected_rows, submit_file, validate_submission

ROW_IDS = list(range(1, 7))
TEST_IDS = list(range(1, 5))


@pytest.fixture(scope="module")
def server():
    with KaggleServer() as running:
        yield running


@pytest.fixture
def kaggle(server, monkeypatch, tmp_path):
    """The fake Kaggle, with alice signed in through KAGGLE_USERNAME / KAGGLE_KEY."""
    point_client_at(server, monkeypatch, tmp_path)
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "alices-key")
    state = server.state
    state.reset()
    state.users["alice"] = "alices-key"
    state.bundles = {KEYPOINTS.slug: b"", EXPRESSIONS.slug: b""}
    state.rules_accepted = {KEYPOINTS.slug, EXPRESSIONS.slug}
    return state


def csv_file(tmp_path, text, name="submission.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def keypoints_text(locations=("48.0", "12.5", "0", "96", "33.25", "60.1"), row_ids=ROW_IDS,
                   header="RowId,Location"):
    return header + "\n" + "".join(f"{i},{x}\n" for i, x in zip(row_ids, locations))


# --- keypoints --------------------------------------------------------------------------------

def test_a_well_formed_keypoints_file_is_valid(tmp_path):
    assert validate_submission("keypoints", csv_file(tmp_path, keypoints_text()), ROW_IDS) == []


@pytest.mark.parametrize("text, problem", [
    (keypoints_text(header="RowId,location"), "line 1: header 'RowId,location' where 'RowId,Location'"),
    (keypoints_text(header="Location,RowId"), "line 1: header"),
    (keypoints_text(locations=["1"] * 5), "5 rows where 6 were expected"),
    (keypoints_text(row_ids=[1, 2, 4, 3, 5, 6]), "line 4: RowId '4' where 3 was expected"),
    (keypoints_text(locations=["1", "nan", "1", "1", "1", "1"]), "line 3: Location 'nan' is not finite"),
    (keypoints_text(locations=["1", "1", "inf", "1", "1", "1"]), "line 4: Location 'inf' is not finite"),
    (keypoints_text(locations=["1", "1", "1", "96.01", "1", "1"]), "line 5: Location '96.01' is outside [0, 96]"),
    (keypoints_text(locations=["-0.5", "1", "1", "1", "1", "1"]), "line 2: Location '-0.5' is outside"),
    (keypoints_text(locations=["1", "1", "1", "1", "", "1"]), "line 6: Location '' is not a number"),
    ("RowId,Location\n1,2,3\n", "line 2: 3 fields where 2 were expected"),
    ("", "is empty"),
])
def test_keypoints_problems_are_found(tmp_path, text, problem):
    problems = validate_submission("keypoints", csv_file(tmp_path, text), ROW_IDS)
    assert any(problem in found for found in problems), problems


def test_problems_come_in_file_order(tmp_path):
    text = keypoints_text(locations=["x", "1", "200", "1", "1", "nan"])
    problems = validate_submission("keypoints", csv_file(tmp_path, text), ROW_IDS)
    assert [problem.split(":")[0] for problem in problems] == ["line 2", "line 4", "line 7"]


def test_a_missing_file_is_a_problem(tmp_path):
    assert validate_submission("keypoints", tmp_path / "nope.csv", ROW_IDS) == [
        f"{tmp_path / 'nope.csv'} does not exist"]


@settings(max_examples=50, deadline=None, database=None)
@given(st.lists(st.floats(0, 96), min_size=1, max_size=30))
def test_any_in_range_prediction_written_as_the_pipeline_writes_it_is_valid(tmp_path_factory, xs):
    ids = list(range(1, len(xs) + 1))
    text = keypoints_text([f"{x:.4f}" for x in xs], ids)
    path = csv_file(tmp_path_factory.mktemp("hypothesis"), text)
    assert validate_submission("keypoints", path, ids) == []


# --- expressions ------------------------------------------------------------------------------

def test_a_well_formed_expressions_file_is_valid(tmp_path):
    path = csv_file(tmp_path, "Emotion\n0\n6\n3\n3\n")
    assert validate_submission("expressions", path, TEST_IDS) == []


def test_the_header_of_example_submission_can_carry_ids(tmp_path):
    path = csv_file(tmp_path, "Id,Emotion\n1,0\n2,6\n4,3\n3,3\n")
    assert validate_submission("expressions", path, TEST_IDS, expected_header="Id,Emotion") == [
        "line 4: Id '4' where 3 was expected", "line 5: Id '3' where 4 was expected"]


@pytest.mark.parametrize("text, problem", [
    ("emotion\n0\n1\n2\n3\n", "line 1: header 'emotion' where 'Emotion' was expected"),
    ("Emotion\n0\n1\n2\n", "3 rows where 4 were expected"),
    ("Emotion\n0\n7\n2\n3\n", "line 3: Emotion '7' is not a label 0..6"),
    ("Emotion\n0\n-1\n2\n3\n", "line 3: Emotion '-1' is not a label"),
    ("Emotion\n0\n1\n2.0\n3\n", "line 4: Emotion '2.0' is not a whole number"),
    ("Emotion\n0\nHappy\n2\n3\n", "line 3: Emotion 'Happy' is not a whole number"),
])
def test_expressions_problems_are_found(tmp_path, text, problem):
    problems = validate_submission("expressions", csv_file(tmp_path, text), TEST_IDS)
    assert any(problem in found for found in problems), problems


# --- submit_file ------------------------------------------------------------------------------

def test_a_valid_file_is_uploaded_byte_for_byte(kaggle, tmp_path):
    path = csv_file(tmp_path, keypoints_text())

    said = submit_file(KEYPOINTS, path, "first try", ROW_IDS)

    assert said == "Successfully submitted to the competition"
    assert list(kaggle.uploads.values()) == [path.read_bytes()]
    (created,) = kaggle.calls("CreateSubmission")
    assert created.json()["submissionDescription"] == "first try"
    assert created.json()["competitionName"] == KEYPOINTS.slug


def test_an_invalid_file_is_refused_and_nothing_is_sent(kaggle, tmp_path):
    locations = ["nan"] * len(ROW_IDS)
    path = csv_file(tmp_path, keypoints_text(locations) * 3)   # 18 rows and 2 stray headers

    with pytest.raises(BadInputError) as refusal:
        submit_file(KEYPOINTS, path, "oops", ROW_IDS)

    message = str(refusal.value)
    assert "nothing was uploaded" in message and "20 rows where 6 were expected" in message
    assert message.count("; ") == 9 and message.endswith("(and 11 more)")   # 10 of 21 shown
    assert kaggle.requests == []


def test_expressions_file_goes_to_the_expressions_competition(kaggle, tmp_path):
    path = csv_file(tmp_path, "Emotion\n0\n6\n3\n3\n")
    submit_file(EXPRESSIONS, path, "labels", TEST_IDS)
    assert kaggle.calls("StartSubmissionUpload")[0].json()["competitionName"] == EXPRESSIONS.slug
    assert list(kaggle.uploads.values()) == [path.read_bytes()]


def test_rules_not_accepted_stops_the_submission(kaggle, tmp_path):
    kaggle.rules_accepted.clear()
    with pytest.raises(KaggleError, match="HTTP 403") as error:
        submit_file(KEYPOINTS, csv_file(tmp_path, keypoints_text()), "first try", ROW_IDS)
    assert KEYPOINTS.rules_url in str(error.value)
    assert kaggle.uploads == {}


# --- what the clean stage left ----------------------------------------------------------------

def test_expected_rows_come_from_the_clean_stage(tmp_path):
    (tmp_path / "lookup.csv").write_text("RowId,ImageId,FeatureName\n1,1,nose_tip_x\n2,1,nose_tip_y\n")
    assert expected_rows(KEYPOINTS, tmp_path) == (["1", "2"], None)
    (tmp_path / "test_ids.csv").write_text("Id\n1\n2\n3\n")
    (tmp_path / "meta.json").write_text('{"submission_header": "Id,Emotion"}')
    assert expected_rows(EXPRESSIONS, tmp_path) == (["1", "2", "3"], "Id,Emotion")


def test_expected_rows_before_clean_says_what_to_run(tmp_path):
    with pytest.raises(MissingInputError, match="run `python run.py clean --task keypoints` first"):
        expected_rows(KEYPOINTS, tmp_path)

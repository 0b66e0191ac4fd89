from pipeline.cache import Cache


def make(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("input")
    output = tmp_path / "out.txt"
    output.write_text("output")
    cache = Cache(tmp_path)
    cache.record(tmp_path / "m.json", "stage", [source], {"a": 1}, [output], {"rows": 3})
    return cache, source, output


def test_unchanged_stage_is_fresh(tmp_path):
    cache, source, _ = make(tmp_path)
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 1}) == {"rows": 3}


def test_changed_param_or_input_is_stale(tmp_path):
    cache, source, _ = make(tmp_path)
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 2}) is None
    source.write_text("other input")
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 1}) is None


def test_output_that_no_longer_matches_its_hash_is_stale(tmp_path):
    cache, source, output = make(tmp_path)
    output.write_text("outpuT")   # same size, different content
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 1}) is None


def test_missing_or_corrupt_manifest_is_stale(tmp_path):
    cache, source, output = make(tmp_path)
    (tmp_path / "m.json").write_text("{not json")
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 1}) is None
    (tmp_path / "m.json").unlink()
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 1}) is None

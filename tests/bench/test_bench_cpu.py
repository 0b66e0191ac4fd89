"""python -m pipeline.bench cpu at a tiny size: every figure is computed and printed (never judged)."""
import re

import pytest
from click.testing import CliRunner

pytest.importorskip("tensorflow")

from pipeline.bench import cli, cpu  # noqa: E402


def test_it_prints_the_limit_the_flops_and_the_efficiency_of_each_model():
    result = CliRunner().invoke(cli, ["cpu", "--repeats", "2", "--models", "compact_vgg", "--steps", "0.03",
                                      "--matmul-size", "64", "--precision", "float32"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    figures = dict(re.findall(r"^(\w+)=(\S+)", result.output, flags=re.M))
    model, flags, cores = cpu.cpu_description()
    assert figures["cpu_model"] == model.split()[0] and int(figures["cores"]) == cores
    for key in ("matmul_float32_gflops", "training_mflops_per_image_compact_vgg",
                "images_per_second_compact_vgg", "gflops_compact_vgg", "flop_efficiency_compact_vgg"):
        assert float(figures[key]) > 0, key
    assert "95% CI" in result.output
    gflops = float(figures["gflops_compact_vgg"])
    efficiency = float(figures["flop_efficiency_compact_vgg"])
    assert efficiency == pytest.approx(gflops / float(figures["matmul_float32_gflops"]), rel=0.02, abs=0.01)


def test_the_flop_count_comes_from_the_graph_and_scales_with_the_model():
    small = cpu.training_flops_per_image("compact_vgg")
    assert small % 3 == 0 and small > 0
    assert cpu.training_flops_per_image("densenet") > 5 * small
    assert cpu.training_flops_per_image("compact_vgg_wide") == pytest.approx(4 * small, rel=0.1)   # twice the width


def test_the_model_timed_is_the_one_named_not_its_recipes(monkeypatch):
    from pipeline.bench import throughput
    from pipeline.models import MODELS

    built = []
    setup = throughput._setup
    monkeypatch.setattr(throughput, "_setup", lambda *args, **kwargs: built.append(setup(*args, **kwargs)) or built[-1])
    measure, batch = cpu.training_timer("compact_vgg_wide", "float32", 1)
    assert measure() > 0 and batch == 64
    # and at the batch size its recipe trains it with in that precision
    assert cpu.recipe_batch("compact_vgg", "float32") == 128 and cpu.recipe_batch("compact_vgg", "mixed") == 64
    assert built[0][3].count_params() == MODELS["compact_vgg_wide"].reference_params   # not fast's compact_vgg


def test_bfloat16_units_are_read_from_the_flags_and_onednns_cap(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert cpu.has_bfloat16_units(["avx2", "avx512_bf16"]) and cpu.has_bfloat16_units(["amx_bf16"])
    assert not cpu.has_bfloat16_units(["avx2", "avx512f"])
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")   # oneDNN as on an AVX2 CPU: no bfloat16 there
    assert not cpu.has_bfloat16_units(["avx2", "avx512_bf16"])
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_bf16")
    assert cpu.has_bfloat16_units(["avx2", "avx512_bf16"])
    mean, low, high = cpu.interval([1.0, 2.0, 3.0])
    assert low < mean == 2.0 < high


def test_a_model_with_threads_of_its_own_is_timed_in_a_process_with_them():
    measure = cpu.remote_training_timer((2, 1), "heatmap_keypoints", "float32", 1)
    assert measure() > 0 and measure() > 0   # answers each time it is asked
    batch = cpu.recipe_batch("compact_vgg", "float32")
    assert f"[batch {batch}, TensorFlow's default threads]" in CliRunner().invoke(
        cli, ["cpu", "--repeats", "1", "--models", "compact_vgg", "--steps", "0.02", "--matmul-size", "64",
              "--precision", "float32"]).output

"""python -m pipeline.bench layers at a tiny size: each layer's figures, the split of the step and
the ceiling are computed and printed, and agree with each other (never judged by their size)."""
import re

import pytest
from click.testing import CliRunner

pytest.importorskip("tensorflow")

from pipeline.bench import cli, cpu, layertimes  # noqa: E402


def test_each_convolution_is_counted_as_the_profiler_counts_the_graph():
    model = layertimes._model("compact_vgg", "float32")
    convolutions, norms = layertimes.timed_layers(model)
    blocks = [f"block{b}_conv{c}" for b in (1, 2, 3) for c in (1, 2)]
    assert [layer.name for layer, _ in convolutions] == ["stem_conv", *(f"{b}_conv" for b in blocks)]
    assert [layer.name for layer, _ in norms] == ["stem_bn", *(f"{b}_bn" for b in blocks)]
    assert [shape for _, shape in convolutions][:2] == [(48, 48, 1), (24, 24, 16)]
    forward = sum(layertimes.forward_mflops(layer, shape) for layer, shape in convolutions)
    assert forward * 1e6 * 3 == pytest.approx(cpu.training_flops_per_image("compact_vgg"), rel=0.01)


def test_it_splits_the_step_and_prints_a_ceiling_from_the_same_timings():
    result = CliRunner().invoke(cli, ["layers", "--models", "compact_vgg", "--precision", "float32",
                                      "--repeats", "1", "--steps", "0.03", "--matmul-size", "64"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    convolutions = re.findall(r"^(\w+_conv) +\S+ +\S+ +\d +[\d.]+ +[\d.]+ +\d+ +([\d.]+) +\d+$", result.output, re.M)
    norms = re.findall(r"^(\w+_bn) +\S+ +[\d.]+ +([\d.]+)$", result.output, re.M)
    assert len(convolutions) == 7 and len(norms) == 7 and convolutions[0][0] == "stem_conv"
    figures = {key: float(value) for key, value in re.findall(r"^(\w+)=([\d.e+-]+)", result.output, re.M)}
    conv_ms, norm_ms = (sum(float(ms) for _, ms in rows) for rows in (convolutions, norms))
    step_ms = figures["step_ms_compact_vgg"]
    assert figures["convolution_ms_per_step_compact_vgg"] == pytest.approx(conv_ms, rel=0.01, abs=0.01)
    assert figures["batchnorm_ms_per_step_compact_vgg"] == pytest.approx(norm_ms, rel=0.01, abs=0.01)
    assert figures["rest_ms_per_step_compact_vgg"] == pytest.approx(step_ms - conv_ms - norm_ms, rel=0.02, abs=0.05)
    assert figures["convolution_share_of_step_compact_vgg"] == pytest.approx(conv_ms / step_ms, rel=0.02)
    # efficiency / ceiling = the convolutions' share of the step
    share = figures["flop_efficiency_compact_vgg"] / figures["flop_efficiency_ceiling_compact_vgg"]
    assert share == pytest.approx(figures["convolution_share_of_step_compact_vgg"], rel=0.02)


def test_a_layer_is_timed_in_training_mode_with_the_gradients_training_takes():
    model = layertimes._model("compact_vgg", "float32")
    (stem, shape), (block, block_shape) = layertimes.timed_layers(model)[0][:2]
    assert stem.input is model.inputs[0] and block.input is not model.inputs[0]
    norm, norm_shape = layertimes.timed_layers(model)[1][0]
    before = norm.moving_mean.numpy().copy()
    cases = ((stem, shape, False), (block, block_shape, True), (norm, norm_shape, True))
    for layer, layer_shape, input_gradient in cases:
        forward, training = layertimes.layer_timers(layer, layer_shape, 2, input_gradient)
        assert forward(calls=1) > 0 and training(calls=2) > 0
    assert not (norm.moving_mean.numpy() == before).all()   # batch statistics: training mode


def test_an_unknown_model_is_one_line():
    result = CliRunner().invoke(cli, ["layers", "--models", "vgg99"])
    assert result.exit_code == 2 and "vgg99 is not one of" in result.output

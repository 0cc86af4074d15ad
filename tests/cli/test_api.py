"""The Python API: the command's work from Python, with model objects and arrays, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mlinfn_compress as mc
from mlinfn_compress.compress.fixed import quantize, to_float
from mlinfn_compress.compress.flow.outdir import load_outdir
from mlinfn_compress.compress.ir import golden


def _tf_keras_model() -> object:
    import tf_keras as k

    rng = np.random.default_rng(1)
    model = k.Sequential(
        [k.layers.Input((6,)), k.layers.Dense(5, activation="relu"), k.layers.Dense(3, activation="softmax")],
        name="api_mlp",
    )
    for layer in model.layers:
        w, b = layer.get_weights()
        layer.set_weights([rng.normal(0, 0.6, w.shape), rng.normal(0, 0.1, b.shape)])
    return model


@pytest.mark.slow
def test_compress_an_in_memory_keras_model_with_array_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (240, 6))
    y = rng.integers(0, 3, 240)
    run = mc.compress(_tf_keras_model(), tmp_path / "out", data=(x[:200], y[:200], x[200:], y[200:]), simulate=150)
    assert run.passed and run.exit_code == 0 and run.outdir == tmp_path / "out"
    assert run.report["model"]["path"] == "in-memory Keras model 'api_mlp'"
    assert run.verification["mismatches"] == 0 and run.verification["samples"] == 150
    assert run.accuracy is not None and run.accuracy["samples"] == 40
    assert [row["op"] for row in run.layers] == ["dense", "relu", "dense"]
    assert "BIT-EXACT" in run.summary()
    assert not list(tmp_path.glob(".*"))  # no staging folder left beside the output


@pytest.mark.slow
def test_simulate_runs_the_design_on_new_inputs(tmp_path: Path) -> None:
    run = mc.compress(_tf_keras_model(), tmp_path / "out", simulate=50)
    x = np.random.default_rng(5).normal(0, 1, (30, 6))
    graph, _, _ = load_outdir(run.outdir)
    assert graph.input_type is not None and graph.output.result_type is not None
    want = to_float(golden.run(graph, quantize(x, graph.input_type))["logits"], graph.output.result_type.frac)
    assert np.array_equal(mc.simulate(run.outdir, x), want)
    assert np.array_equal(mc.simulate(run.outdir, x, backend="golden"), want)
    with pytest.raises(mc.UserError, match="holds no HLS project"):
        mc.simulate(run.outdir, x, backend="hls")
    again = mc.verify(run.outdir)
    assert again.passed and again.report["verification"]["samples"] == 50


def test_options_are_checked_like_the_commands(tmp_path: Path) -> None:
    model = tmp_path / "m.h5"
    _tf_keras_model().save(model)  # type: ignore[attr-defined]
    with pytest.raises(mc.UserError, match=r"^--bits must be an integer from 2 to 24, got 0$"):
        mc.compress(model, tmp_path / "o", bits=0)
    with pytest.raises(mc.UserError, match=r"^--prune must be a number in \[0, 1\), got 1.5$"):
        mc.compress(model, tmp_path / "o", prune=1.5)
    with pytest.raises(mc.UserError, match="unknown option\\(s\\) colour"):
        mc.compress(model, tmp_path / "o", colour="red")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_torch_module_in_its_own_channels_first_layout(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv1d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(24, 2)
    ).double()
    run = mc.compress(net, tmp_path / "out", input_shape=(2, 8), simulate=80)
    assert run.passed, run.summary()
    assert run.report["model"]["framework_input_shape"] == [2, 8]
    x = np.random.default_rng(2).normal(0, 1, (20, 2, 8))  # as the module takes it: channels first
    hw = mc.simulate(run.outdir, x)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert hw.shape == ref.shape and np.max(np.abs(hw - ref)) < 0.05


@pytest.mark.slow
def test_test_set_outputs_of_every_model_and_the_twin_on_new_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (260, 6))
    y = rng.integers(0, 3, 260)
    model = _tf_keras_model()
    run = mc.compress(model, tmp_path / "out", target="both", data=(x[:200], y[:200], x[200:], y[200:]), simulate=60)
    assert run.passed, run.summary()
    outs = run.test_outputs()
    assert sorted(outs) == ["compressed", "float", "hls", "twin", "vhdl"]
    assert all(v.shape == (60, 3) for v in outs.values())
    # the hardware, the HLS C-simulation and the twin equal the golden model bit for bit
    for name in ("vhdl", "hls", "twin"):
        assert np.array_equal(outs[name], outs["compressed"]), name
    # the float outputs are the model's own, before its softmax; the report's accuracy comes from these arrays
    (w0, b0), (w1, b1) = (layer.get_weights() for layer in model.layers)  # type: ignore[attr-defined]
    assert np.allclose(outs["float"], np.maximum(x[200:] @ w0 + b0, 0) @ w1 + b1, atol=1e-5)
    for key, name in (("float", "float"), ("compressed", "compressed"), ("hardware", "vhdl")):
        assert run.accuracy is not None and run.accuracy[key] == np.mean(np.argmax(outs[name], 1) == y[200:])
    assert {k: np.array_equal(v, outs[k]) for k, v in mc.test_outputs(run.outdir).items()} == dict.fromkeys(outs, True)
    # the twin again, on new inputs, from the output folder
    x_new = rng.normal(0, 1, (25, 6))
    assert run.twin["framework"] == "qkeras" and run.twin["device"] == "/CPU:0"
    assert np.array_equal(mc.simulate(run.outdir, x_new, backend="twin"), mc.simulate(run.outdir, x_new))
    with pytest.raises(mc.UserError, match=r"^backend must be vhdl, hls, golden or twin, got 'c'$"):
        mc.simulate(run.outdir, x_new, backend="c")


@pytest.mark.slow
def test_test_set_outputs_come_in_the_models_own_layout(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3, padding=1), torch.nn.ReLU()).double()
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (70, 2, 8))  # channels first, as the module takes it
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()  # (N, 3, 8): regression targets in the module's layout
    run = mc.compress(net, tmp_path / "out", input_shape=(2, 8), data=(x[:50], y[:50], x[50:], y[50:]), simulate=40)
    assert run.passed, run.summary()
    outs = run.test_outputs()
    assert sorted(outs) == ["compressed", "float", "twin", "vhdl"]
    assert np.allclose(outs["float"], y[50:].reshape(20, -1))
    assert np.max(np.abs(outs["vhdl"] - outs["float"])) < 0.05  # channels first again, not the hardware's order
    assert np.array_equal(outs["vhdl"], mc.simulate(run.outdir, x[50:]))
    assert np.array_equal(outs["twin"], mc.simulate(run.outdir, x[50:], backend="twin", device="cpu"))
    assert run.twin["framework"] == "brevitas" and run.twin["device"] in ("cpu", "cuda")


@pytest.mark.slow
def test_without_data_there_are_no_test_outputs_and_errors_name_the_model_not_a_temporary_file(
    tmp_path: Path,
) -> None:
    run = mc.compress(_tf_keras_model(), tmp_path / "out", simulate=20)
    with pytest.raises(mc.UserError, match=r"out: no test-set outputs; they are recorded by runs with labelled data"):
        run.test_outputs()
    with pytest.raises(mc.UserError, match="no report.json"):
        mc.test_outputs(tmp_path)
    import tf_keras as k

    model = k.Sequential(
        [k.layers.Input((4,)), k.layers.Dense(3, activation="tanh", name="hidden"), k.layers.Dense(2)], name="m"
    )
    x = np.random.default_rng(0).normal(0, 1, (40, 4))
    with pytest.raises(mc.UserError) as info:
        mc.compress(model, tmp_path / "q", qat=True, data=(x[:30], x[:30, :2], x[30:], x[30:, :2]))
    assert str(info.value) == (
        "in-memory Keras model 'm': cannot fine-tune the model: layer 'hidden': activation 'tanh' cannot be "
        "quantised; use relu"
    )
    assert not (tmp_path / "q").exists()


@pytest.mark.slow
def test_a_run_leaves_the_sessions_matplotlib_backend_and_figures_alone(tmp_path: Path) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # a notebook's inline backend, say: report.html must not switch it to Agg
    fig = plt.figure()
    try:
        run = mc.compress(_tf_keras_model(), tmp_path / "out", simulate=20)
        assert (run.outdir / "report.html").exists()
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == [fig.number]
    finally:
        plt.close(fig)
        matplotlib.use(backend)

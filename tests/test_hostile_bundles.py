"""Hostile model files: opening one must run no code from it and read no file outside it, and
every refusal is one typed error (PlanError, FileNotFoundError) -- from the API and as one
line from ``pyposert info --model``.

The two security probes carry their own controls: the pickle probe writes a marker file when
it is unpickled, and the external-data probe points ONNX Runtime at a secret file; each test
first shows that the bare framework falls for the probe (marker written, secret in the output),
then that pyposert does not."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import struct
import threading
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import pyposert
from pyposert import Engine, PlanError
from pyposert.bundle import read_bundle, write_bundle
from pyposert.cli import main as cli
from pyposert.safety import check_onnx, load_json, sanitize_torch_program
from stub_models import stub_bundle, stub_manifest

H, W = 16, 12
MANIFEST = stub_manifest(H, W)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid bundle (a stub heatmap-contract graph) that the hostile variants start from."""
    return stub_bundle(tmp_path_factory.mktemp("good") / "good.plan", H, W)


def _entries(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _zip(path: Path, entries: list[tuple[Any, bytes]]) -> Path:
    """Write entries (name or ZipInfo, data) as given: duplicates and odd attributes included."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def _info_one_line(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """``pyposert info --model PATH``: non-zero, one line on stderr, no traceback; returns it."""
    assert cli(["info", "--model", str(path)]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_the_good_bundle_loads(good: Path) -> None:
    assert Engine(good).size == (H, W)  # so the refusals below are about what was changed


# ---------------------------------------------------------------------------- the pickle probe
class _WritesMarker:
    """Unpickling this creates the marker file (open(path, "w")): code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def _pickled_weight_program(marker: Path) -> bytes:
    """A valid torch.export archive whose first weight is stored as a pickle that runs code."""
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(39, 3, 1)

        def forward(self, source_image: Any, pose_heatmaps: Any) -> Any:
            return torch.tanh(self.conv(torch.cat([source_image, pose_heatmaps], 1)))

    program = torch.export.export(Net().eval(), (torch.zeros(1, 3, H, W), torch.zeros(1, 36, H, W)))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    entries = _entries_of(buffer.getvalue())
    config_name = next(n for n in entries if n.endswith("data/weights/model_weights_config.json"))
    config = json.loads(entries[config_name])
    fqn, meta = next(iter(config["config"].items()))
    meta["use_pickle"] = True
    entries[config_name] = json.dumps(config).encode()
    weight = config_name.rsplit("/", 1)[0] + "/" + meta["path_name"]
    entries[weight] = pickle.dumps(_WritesMarker(marker))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def _entries_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def test_a_pickled_torch_program_entry_runs_no_code(good: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pickle-ran"
    hostile = _pickled_weight_program(marker)

    # Control: torch.export.load itself unpickles the weight (so this probe can fail).
    with pytest.raises(Exception):
        torch.export.load(io.BytesIO(hostile))
    assert marker.exists(), "the probe no longer runs code in torch.export.load; rebuild it"
    marker.unlink()

    plan = write_bundle(tmp_path / "pickled.plan", MANIFEST,  # the project's own writer: every hash checks
                        {"model.onnx": ("onnx", _entries(good)["model.onnx"], None),
                         "model.pt2": ("torch-export", hostile, None)})
    with pytest.raises(PlanError, match="pickle"):
        Engine(plan, backend="torch", device="cpu")
    with pytest.raises(PlanError, match="pickle"):
        sanitize_torch_program(hostile, "model.pt2")
    assert not marker.exists()
    # The ONNX Runtime path of the same bundle never touches the program.
    assert Engine(plan, backend="onnxruntime").backend == "onnxruntime"
    assert not marker.exists()


def _edited_program(edit: Callable[[dict], None]) -> bytes:
    """A clean exported program with its models/model.json edited."""
    torch = pytest.importorskip("torch")
    program = torch.export.export(torch.nn.ReLU(), (torch.zeros(2, 3),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    entries = _entries_of(buffer.getvalue())
    name = next(n for n in entries if n.endswith("models/model.json"))
    sanitize_torch_program(buffer.getvalue(), "clean")  # the unedited program passes
    model = json.loads(entries[name])
    edit(model)
    entries[name] = json.dumps(model).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for entry, data in entries.items():
            zf.writestr(entry, data)
    return out.getvalue()


def _set_all(node: Any, key: str, value: str) -> None:
    if isinstance(node, dict):
        for k in list(node):
            if k == key and isinstance(node[k], str):
                node[k] = value
            else:
                _set_all(node[k], key, value)
    elif isinstance(node, list):
        for item in node:
            _set_all(item, key, value)


@pytest.mark.parametrize("key, value, message", [
    ("target", "torch.serialization.os.system", "not a tensor operator"),
    ("target", "torch.ops.aten.from_file.default", "not a tensor operator"),
    ("expr_str", "__import__('os').system('true')", "not a plain arithmetic expression"),
    ("expr_str", "Symbol('s0').__class__", "not a plain arithmetic expression"),
])
def test_torch_programs_call_operators_only(key: str, value: str, message: str) -> None:
    """A graph node calling a Python function reachable from torch (os.system), or a symbolic
    shape that torch would hand to sympy's eval, is refused before torch sees the file."""
    with pytest.raises(PlanError, match=message):
        sanitize_torch_program(_edited_program(lambda m: _set_all(m, key, value)), "model.pt2")


@pytest.mark.parametrize("extra", ["data/sample_inputs/other.pt", "data/constants/custom_obj_0",
                                   "data/weights/model.pt", "extra/notes.txt"])
def test_torch_programs_hold_no_unexpected_entries(extra: str) -> None:
    clean = _edited_program(lambda m: None)
    entries = _entries_of(clean)
    root = next(iter(entries)).split("/", 1)[0]
    entries[f"{root}/{extra}"] = pickle.dumps({"x": 1})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    with pytest.raises(PlanError, match="unexpected archive entry"):
        sanitize_torch_program(out.getvalue(), "model.pt2")


# ---------------------------------------------------------------------------- the external-data probe
SECRET = np.arange(3 * H * W, dtype=np.float32).reshape(1, 3, H, W) * 0.01 + 0.5


def _external_onnx(location: str, *, as_constant: bool = False) -> bytes:
    """image = source_image * 0 + secret, where secret's bytes are external data at
    ``location`` (an initialiser, or a Constant node's tensor attribute)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    tensor = TensorProto(name="secret", data_type=TensorProto.FLOAT, dims=list(SECRET.shape))
    tensor.data_location = TensorProto.EXTERNAL
    for k, v in {"location": location, "offset": "0", "length": str(SECRET.nbytes)}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = k, v

    def value(name: str, channels: int) -> Any:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", channels, H, W])

    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [helper.make_node("Mul", ["source_image", "zero"], ["blank"]),
             helper.make_node("Add", ["blank", "secret"], ["image"])]
    inits = [zero]
    if as_constant:
        nodes.insert(0, helper.make_node("Constant", [], ["secret"], value=tensor))
    else:
        inits.append(tensor)
    graph = helper.make_graph(nodes, "probe", [value("source_image", 3), value("pose_heatmaps", 36)],
                              [value("image", 3)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_onnx_external_data_outside_the_bundle_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    ort = pytest.importorskip("onnxruntime")
    home = tmp_path / "home"
    home.mkdir()
    (home / "id_rsa").write_bytes(SECRET.tobytes())
    monkeypatch.chdir(home)  # "run from a home folder"
    probe = _external_onnx("id_rsa")

    # Control: ONNX Runtime given these bytes reads the file from the working directory, and
    # the secret reaches the output (so this probe can fail).
    session = ort.InferenceSession(probe, providers=["CPUExecutionProvider"])
    leaked = session.run(None, {"source_image": np.zeros((1, 3, H, W), np.float32),
                                "pose_heatmaps": np.zeros((1, 36, H, W), np.float32)})[0]
    assert np.array_equal(leaked, SECRET), "the probe no longer leaks through ONNX Runtime; rebuild it"

    plan = write_bundle(tmp_path / "leak.plan", MANIFEST, {"model.onnx": ("onnx", probe, None)})
    with pytest.raises(PlanError, match="external data"):
        Engine(plan)
    for location, constant in (("../home/id_rsa", False), (str(home / "id_rsa"), False), ("id_rsa", True)):
        bare = tmp_path / f"bare_{len(location)}_{constant}.onnx"
        bare.write_bytes(_external_onnx(location, as_constant=constant))
        with pytest.raises(PlanError, match="external data"):
            Engine(bare)
        with pytest.raises(PlanError, match="external data"):
            check_onnx(bare.read_bytes(), bare.name)
        assert "external data" in _info_one_line(bare, capsys)


def test_onnx_check_accepts_real_graphs(good: Path) -> None:
    for name, data in _entries(good).items():
        if name.endswith(".onnx"):
            check_onnx(data, name)
    shipped = Path(__file__).resolve().parents[1] / "models" / "nram.plan"
    if shipped.is_file():
        bundle = read_bundle(shipped)
        for name in bundle.payload_names():
            if name.endswith(".onnx"):
                check_onnx(bundle.read_payload(name), name)


# ---------------------------------------------------------------------------- archive structure
def _rename(data: bytes, placeholder: bytes, name: bytes) -> bytes:
    """Replace an entry name in both zip headers (same length), which zipfile cannot write."""
    assert len(placeholder) == len(name) and data.count(placeholder) == 2
    return data.replace(placeholder, name)


@pytest.mark.parametrize("name", [b"../model.onnx", b"/tmp/mo.onnx", b"a/../../x.onnx", b"C:model.onnx"])
def test_dot_dot_and_absolute_entry_names(good: Path, tmp_path: Path, name: bytes,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    entries = _entries(good)
    placeholder = b"Q" * len(name)
    path = _zip(tmp_path / "x.plan", [("manifest.json", entries["manifest.json"]),
                                      ("model.onnx", entries["model.onnx"]), (placeholder.decode(), b"evil")])
    path.write_bytes(_rename(path.read_bytes(), placeholder, name))
    with pytest.raises(PlanError, match="not a plain relative name"):
        read_bundle(path)
    with pytest.raises(PlanError):
        Engine(path)
    _info_one_line(path, capsys)


def test_duplicate_entries(good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries = _entries(good)
    with pytest.warns(UserWarning):  # zipfile warns, and writes it anyway
        path = _zip(tmp_path / "dup.plan", [("manifest.json", entries["manifest.json"]),
                                            ("model.onnx", entries["model.onnx"]), ("model.onnx", b"other")])
    with pytest.raises(PlanError, match="appears twice"):
        Engine(path)
    _info_one_line(path, capsys)


def test_symlink_entry(good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries = _entries(good)
    link = zipfile.ZipInfo("model.onnx")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = _zip(tmp_path / "link.plan", [("manifest.json", entries["manifest.json"]), (link, b"/etc/passwd")])
    with pytest.raises(PlanError, match="symbolic link"):
        Engine(path)
    _info_one_line(path, capsys)


def test_unlisted_entry(good: Path, tmp_path: Path) -> None:
    entries = _entries(good)
    path = _zip(tmp_path / "extra.plan", [*entries.items(), ("payload.bin", b"not in the manifest")])
    with pytest.raises(PlanError, match="not listed in its manifest"):
        Engine(path)


def test_zip_bombs(good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries = _entries(good)
    # A real bomb: 64 MiB of zeros deflated to ~64 KiB.
    bomb = zipfile.ZipInfo("model.onnx")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    deflated = _zip(tmp_path / "deflate.plan", [("manifest.json", entries["manifest.json"]),
                                                (bomb, bytes(64 << 20))])
    assert deflated.stat().st_size < 1 << 20
    with pytest.raises(PlanError, match="compressed"):
        Engine(deflated)
    _info_one_line(deflated, capsys)
    # A stored entry whose central directory declares 4 GiB - 16 bytes.
    path = _zip(tmp_path / "declared.plan", list(entries.items()))
    data = bytearray(path.read_bytes())
    pos = data.rfind(b"PK\x01\x02")  # the last central directory record: model.onnx
    struct.pack_into("<II", data, pos + 20, 0xFFFFFFF0, 0xFFFFFFF0)  # compressed, uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises(PlanError):
        Engine(path)
    _info_one_line(path, capsys)


# ---------------------------------------------------------------------------- manifest bombs
@pytest.mark.parametrize("manifest, message", [
    (b"[" * 200000, "nested deeper"),
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested deeper"),
    (None, "5000 digits"),
    (b'{"format": "pyposert-plan", "format": "x"}', "appears twice"),
    (b'{"x": NaN}', "NaN"),
    (b'{"x": 1e999}', "out of range"),
    (b"\xff\xfe{}", "not valid JSON"),
])
def test_manifest_bombs(good: Path, tmp_path: Path, manifest: bytes | None, message: str,
                        capsys: pytest.CaptureFixture[str]) -> None:
    entries = _entries(good)
    if manifest is None:
        manifest = entries["manifest.json"].replace(b'"height": 16', b'"height": ' + b"9" * 5000)
    path = _zip(tmp_path / "bomb.plan", [("manifest.json", manifest), ("model.onnx", entries["model.onnx"])])
    with pytest.raises(PlanError, match=message):
        read_bundle(path)
    with pytest.raises(PlanError, match=message):
        Engine(path)
    _info_one_line(path, capsys)


def test_manifest_sizes_are_bounded(good: Path, tmp_path: Path) -> None:
    entries = _entries(good)
    manifest = json.loads(entries["manifest.json"])
    manifest["input"]["height"] = 10 ** 12  # would ask for terabytes of buffers
    path = _zip(tmp_path / "huge.plan", [("manifest.json", json.dumps(manifest).encode()),
                                         ("model.onnx", entries["model.onnx"])])
    with pytest.raises(PlanError, match=r"input\.height must be <= 4096"):
        Engine(path)


def test_load_json_limits() -> None:
    assert load_json(b'{"a": [1, 2.5, "x"]}', "t", "w") == {"a": [1, 2.5, "x"]}
    with pytest.raises(PlanError, match="nested deeper than 3"):
        load_json(b"[[[[1]]]]", "t", "w", max_depth=3)
    assert load_json(b'["[[[[[[", "]]"]', "t", "w", max_depth=2) == ["[[[[[[", "]]"]  # strings do not count


# ---------------------------------------------------------------------------- paths that are not files
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_a_named_pipe_is_refused_without_hanging(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("pipe.plan", "pipe.onnx", "pipe"):
        fifo = tmp_path / name
        os.mkfifo(fifo)
        outcome: list[BaseException] = []

        def load() -> None:
            try:
                Engine(fifo)
            except BaseException as exc:  # noqa: BLE001 - inspected below
                outcome.append(exc)

        thread = threading.Thread(target=load, daemon=True)  # a hang leaves only a daemon thread behind
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive(), f"Engine({name}) hangs on a named pipe"
        assert len(outcome) == 1 and isinstance(outcome[0], PlanError), outcome
        assert "named pipe" in str(outcome[0])
        with pytest.raises(PlanError, match="named pipe"):
            read_bundle(fifo)
        assert "named pipe" in _info_one_line(fifo, capsys)


def test_folders_missing_files_and_bare_engines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PlanError, match="directory"):
        Engine(tmp_path)
    with pytest.raises(FileNotFoundError):
        Engine(tmp_path / "missing.plan")
    _info_one_line(tmp_path / "missing.plan", capsys)
    engine_file = tmp_path / "model.engine"
    engine_file.write_bytes(b"\x00ftrt" + bytes(200))  # what a serialized TensorRT engine looks like to us
    with pytest.raises(PlanError, match="native code"):
        Engine(engine_file)
    with pytest.raises(PlanError, match="native code"):
        Engine(engine_file, backend="tensorrt")
    _info_one_line(engine_file, capsys)


def test_pyposert_has_these_names() -> None:
    assert pyposert.PlanError is PlanError


def test_a_program_torch_cannot_read_is_one_plan_error(capfd: pytest.CaptureFixture[str]) -> None:
    """torch.export.load logs its first failure with a traceback; the backend reports one
    PlanError and nothing else."""
    from pyposert.backends.torch_backend import TorchBackend

    data = _edited_program(lambda m: _set_all(m, "target", "torch.ops.aten.no_such_operator.default"))
    with pytest.raises(PlanError, match="torch cannot load the program"):
        TorchBackend(data, where="model.pt2")
    assert "Traceback" not in capfd.readouterr().err


def test_external_data_is_found_wherever_a_tensor_can_be() -> None:
    """Subgraph bodies, function attribute defaults, sparse initialisers, and a bare
    data_location flag without a location."""
    pytest.importorskip("onnx")
    from onnx import AttributeProto, FunctionProto, ModelProto, SparseTensorProto, TensorProto, helper

    def external(name: str = "t") -> TensorProto:
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[1])
        tensor.data_location = TensorProto.EXTERNAL
        return tensor

    def model_with(graph_edit: Callable[[Any], None] | None = None,
                   model_edit: Callable[[ModelProto], None] | None = None) -> bytes:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        if graph_edit:
            graph_edit(graph)
        model = helper.make_model(graph)
        if model_edit:
            model_edit(model)
        return model.SerializeToString()

    check_onnx(model_with(), "clean")  # the scaffold itself passes
    then_branch = helper.make_graph([helper.make_node("Constant", [], ["c"], value=external())], "then", [],
                                    [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])])
    variants = {
        "if-body": model_with(lambda g: g.node.append(helper.make_node(
            "If", ["x"], ["z"], then_branch=then_branch, else_branch=then_branch))),
        "function-default": model_with(model_edit=lambda m: m.functions.append(FunctionProto(
            name="f", domain="local", attribute_proto=[AttributeProto(name="a", type=AttributeProto.TENSOR,
                                                                      t=external())]))),
        "sparse": model_with(lambda g: g.sparse_initializer.append(SparseTensorProto(
            values=external("v"), indices=TensorProto(name="i", data_type=TensorProto.INT64, dims=[1],
                                                      int64_data=[0]), dims=[4]))),
    }
    for name, data in variants.items():
        with pytest.raises(PlanError, match="external data"):
            check_onnx(data, name)
    with pytest.raises(PlanError, match="not a valid ONNX model"):
        check_onnx(b"\x0a\xff\xff\xff\xff\x0f", "truncated")

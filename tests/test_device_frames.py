"""The device-frame pipeline (pyposert.backends.device_frames) on any machine.

The GPU backends supply only a DeviceAdapter; everything else -- which inputs are made and
how, the per-batch buffers, the cache of captured frames, warm-up before capture, the photo's
activation, the unletterbox -- is the shared pipeline. Here it runs over :class:`HostDevice`,
an adapter whose "device" is host memory and whose network is ONNX Runtime on a stub graph,
so the pipeline's frames can be compared with the host path's (``Source.feeds`` + run) and its
bookkeeping can be counted. No CUDA runs and no GPU result is claimed; the real adapters
(TensorRT, torch on CUDA) are exercised by the ``cuda`` / ``tensorrt`` tests of
test_engine.py on a GPU machine.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pytest

from pyposert import Engine
from pyposert.backends.device_frames import MAX_GRAPHS, DeviceFrames
from pyposert.backends.onnxruntime_backend import OnnxRuntimeBackend
from pyposert.model import WARP_INPUTS
from pyposert.poses import STANDING_POSE
from stub_models import completion_stub_onnx, heatmap_pair_onnx, keypoint_x_onnx, torch_cuda, warp_stub_onnx

H, W = 48, 32


class Device(np.ndarray):
    """Host memory standing for device memory (so copies know their direction)."""


@dataclass(eq=False)
class Graph:
    """A "captured" frame: the enqueue closure, run again at each replay."""

    enqueue: Callable[[], None]
    epoch: int
    released: bool = False


class HostDevice:
    """A DeviceAdapter on host memory that records what the pipeline asks of it.

    Fresh buffers are filled with NaN (255 for uint8), so an input the pipeline forgets to
    make shows in the output. While capturing, a copy from host memory that ``pinned()`` did
    not make fails: a real graph would bake in the address of a temporary. With
    ``stale_on_rebind`` it behaves like TensorRT: executing on other buffers makes the graphs
    captured before stale."""

    stream = None

    def __init__(self, backend: OnnxRuntimeBackend, stale_on_rebind: bool = False) -> None:
        self.backend = backend
        self.stale_on_rebind = stale_on_rebind
        self.log: list[str] = []
        self.executed: list[dict[str, np.ndarray]] = []
        self.graphs: list[Graph] = []
        self.allocated = 0
        self.capturing = False
        self.epoch = 0
        self._bound: tuple[int, ...] = ()
        self._pinned: set[int] = set()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        yield

    def tensor_dtype(self, name: str) -> str:
        spec = self.backend.input_spec.get(name) or self.backend.output_spec[name]
        return spec.dtype

    def allocate(self, shape: Sequence[int], dtype: str) -> Device:
        self.allocated += 1
        return np.full(tuple(shape), 255 if dtype == "uint8" else np.nan, dtype).view(Device)

    def pinned(self, shape: Sequence[int], dtype: str) -> np.ndarray:
        array = np.full(tuple(shape), 255 if dtype == "uint8" else np.nan, dtype)
        self._pinned.add(array.ctypes.data)
        return array

    def copy(self, dst: Any, src: Any) -> None:
        kind = ("d" if isinstance(src, Device) else "h") + "2" + ("d" if isinstance(dst, Device) else "h")
        if self.capturing and kind == "h2d":
            assert src.ctypes.data in self._pinned, "a captured copy reads host memory that is not a pinned buffer"
        assert dst.dtype == src.dtype and dst.size == src.size
        self.log.append(kind)
        np.copyto(dst.reshape(-1), src.reshape(-1))

    def view(self, array: Any, start: Sequence[int], shape: Sequence[int]) -> Any:
        offset = sum(int(i) * s // array.itemsize for i, s in zip(start, array.strides))
        return array.reshape(-1)[offset:offset + int(np.prod(shape))].reshape(tuple(shape))

    def execute(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        bound = tuple(a.ctypes.data for a in list(inputs.values()) + list(outputs.values()))
        if bound != self._bound:
            self._bound, self.epoch = bound, self.epoch + 1
        self.log.append("execute")
        feeds = {n: np.asarray(a).copy() for n, a in inputs.items()}
        self.executed.append(feeds)
        for name, value in self.backend.run(feeds).items():
            outputs[name][...] = value

    def capture(self, enqueue: Callable[[], None]) -> Graph:
        self.log.append("capture")
        self.capturing = True
        try:
            enqueue()  # as a stream capture records it (here it also runs: replay overwrites it)
        finally:
            self.capturing = False
        graph = Graph(enqueue, self.epoch)
        self.graphs.append(graph)
        return graph

    def replay(self, graph: Graph) -> None:
        assert not graph.released, "replay of a released graph"
        self.log.append("replay")
        graph.enqueue()

    def is_current(self, graph: Graph) -> bool:
        return not self.stale_on_rebind or graph.epoch == self.epoch

    def release(self, graph: Graph) -> None:
        assert not graph.released, "a graph released twice"
        graph.released = True
        self.log.append("release")

    def synchronize(self) -> None:
        self.log.append("synchronize")


class Offer:
    """ONNX Runtime's ``device_adapter`` while a test runs: a new HostDevice per engine
    (``made``), except in :meth:`host`, which makes an engine that runs on host arrays."""

    def __init__(self) -> None:
        self.made: list[HostDevice] = []
        self.enabled = True

    def __call__(self, backend: OnnxRuntimeBackend) -> HostDevice | None:
        if not self.enabled:
            return None
        self.made.append(HostDevice(backend))
        return self.made[-1]

    def host(self, path: Path, **options: Any) -> Engine:
        self.enabled = False
        try:
            return Engine(path, **options)
        finally:
            self.enabled = True


@pytest.fixture
def offer(monkeypatch: pytest.MonkeyPatch) -> Offer:
    offer = Offer()
    monkeypatch.setattr(OnnxRuntimeBackend, "device_adapter", lambda backend: offer(backend))
    return offer


def _photo(rng: np.random.Generator, h: int = 70, w: int = 50) -> tuple[np.ndarray, np.ndarray]:
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return image, STANDING_POSE.astype(np.float32) * np.float32([w / 176, h / 256])


def _poses(pose: np.ndarray, count: int) -> list[np.ndarray]:
    return [pose + np.float32([2.0 * i - 3.0, 1.5 - i]) for i in range(count)]


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("device_frames")
    return {"heatmaps": heatmap_pair_onnx(folder / "pair.onnx", H, W),
            "keypoints": keypoint_x_onnx(folder / "kp.onnx", H, W),
            "warp": warp_stub_onnx(folder / "warp.onnx", H, W),
            "completion": completion_stub_onnx(folder / "completion.onnx", H, W)}


# ------------------------------------------------------------------ frames equal the host path
@pytest.mark.parametrize("kind", ["heatmaps", "keypoints", "warp"])
@pytest.mark.parametrize("framing", [False, True])
def test_device_frames_equal_the_host_path(stubs: dict[str, Path], offer: Offer,
                                           rng: np.random.Generator, kind: str, framing: bool) -> None:
    host = offer.host(stubs[kind], threads=1, framing=framing, required_joints=())
    assert host.device_frames is None
    device = Engine(stubs[kind], threads=1, framing=framing, required_joints=())
    assert isinstance(device.device_frames, DeviceFrames)
    image, pose = _photo(rng)
    poses = _poses(pose, 3)
    for output_size in ("source", "model"):
        want = [host.source(image, pose).run(p, output_size=output_size) for p in poses]
        source = device.source(image, pose)
        got = [source.run(p, output_size=output_size) for p in poses]  # capture, then replays
        got_batch = source.run_batch(poses, output_size=output_size)
        for a, b, c in zip(want, got, got_batch):
            np.testing.assert_array_equal(b, a)
            np.testing.assert_array_equal(c, a)
    assert len({int(np.abs(a.astype(int) - want[0]).sum()) for a in want}) > 1  # the poses show in the output


def test_feeds_follow_the_contract(stubs: dict[str, Path], offer: Offer,
                                   rng: np.random.Generator) -> None:
    """Each network gets exactly its contract's inputs, made on the device: heatmaps (source
    half from the photo, target half per frame), keypoints, the warp of the photo."""
    from pyposert import ops

    image, pose = _photo(rng, H, W)  # model size: the letterbox is the identity
    target = _poses(pose, 1)[0]
    model_input, box = ops.to_model_input(image, H, W)
    src, tgt = box.to_model(pose)[None], box.to_model(target)[None]
    for kind in ("heatmaps", "keypoints", "warp"):
        engine = Engine(stubs[kind], threads=1, framing=False, required_joints=())
        engine.source(image, pose).run(target)
        feeds = offer.made[-1].executed[-1]
        assert set(feeds) == set(engine.spec.inputs)
        np.testing.assert_array_equal(feeds["source_image"], model_input[None])
        if kind == "heatmaps":
            hm = engine.spec.heatmap
            want = ops.heatmaps_pair(src, tgt, H, W, mode=hm.mode, sigma=hm.sigma, radius=hm.radius)
            np.testing.assert_array_equal(feeds["pose_heatmaps"], want)
            continue
        np.testing.assert_array_equal(feeds["source_keypoints"], src)
        np.testing.assert_array_equal(feeds["target_keypoints"], tgt)
        if kind == "warp":
            warped, coverage = ops.warp(model_input[None], src, tgt, H, W)
            np.testing.assert_array_equal(feeds[WARP_INPUTS[0]], warped)
            np.testing.assert_array_equal(feeds[WARP_INPUTS[1]], coverage)
            assert coverage.max() > 0.5


def test_completion_has_no_device_frames(stubs: dict[str, Path], offer: Offer) -> None:
    engine = Engine(stubs["completion"], threads=1)
    assert engine.device_frames is None and not DeviceFrames.supports(engine.spec)
    with pytest.raises(ValueError, match="also takes"):
        DeviceFrames(offer.made[-1], engine.spec)


# ------------------------------------------------------------------ graphs and buffers
def _frames(stubs: dict[str, Path], offer: Offer, kind: str = "heatmaps",
            stale_on_rebind: bool = False) -> tuple[Engine, HostDevice]:
    engine = Engine(stubs[kind], threads=1, framing=False, required_joints=())
    device = offer.made[-1]
    device.stale_on_rebind = stale_on_rebind
    return engine, device


def test_warm_up_then_capture_then_replay(stubs: dict[str, Path], offer: Offer,
                                          rng: np.random.Generator) -> None:
    engine, device = _frames(stubs, offer)
    image, pose = _photo(rng)
    source = engine.source(image, pose)
    device.log.clear()
    source.run(pose)
    steps = [s for s in device.log if s in ("execute", "synchronize", "capture", "replay")]
    # warm-up (uncaptured), wait, capture (records the same steps), replay, wait for the pixels
    assert steps == ["execute", "synchronize", "capture", "execute", "replay", "execute", "synchronize"]
    assert device.log[:3] == ["d2d", "d2d", "h2d"]  # the photo's image and source heatmaps, then the targets
    device.log.clear()
    source.run(_poses(pose, 2)[1])
    assert device.log == ["replay", "h2d", "execute", "d2h", "synchronize"]  # only the graph


def test_graph_cache_keys_batch_box_and_output_size(stubs: dict[str, Path], offer: Offer,
                                                    rng: np.random.Generator) -> None:
    engine, device = _frames(stubs, offer)
    image, pose = _photo(rng)
    other, other_pose = _photo(rng, 90, 40)  # another letterbox
    source, wide = engine.source(image, pose), engine.source(other, other_pose)
    poses = _poses(pose, 2)

    def captures() -> int:
        return device.log.count("capture")

    source.run(poses[0])
    source.run(poses[1])  # same key: replayed
    assert captures() == 1
    source.run(poses[0], output_size="model")  # another output size
    assert captures() == 2
    source.run_batch(poses)  # another batch size
    assert captures() == 3
    wide.run(other_pose)  # another letterbox
    assert captures() == 4
    source.run(poses[1])
    source.run_batch(poses)
    wide.run(other_pose)
    assert captures() == 4 and "release" not in device.log


def test_cache_is_bounded_and_buffers_are_reused(stubs: dict[str, Path], offer: Offer,
                                                 rng: np.random.Generator) -> None:
    engine, device = _frames(stubs, offer)
    image, pose = _photo(rng)
    source = engine.source(image, pose)
    poses = _poses(pose, 6)
    frames = engine.device_frames
    assert frames is not None
    source.run(pose)
    after_first = device.allocated
    source.run(pose, output_size="model")  # same batch: only the frame's pixels are new
    assert device.allocated == after_first + 1
    for batch in range(1, MAX_GRAPHS + 3):
        source.run_batch(poses[:batch])
    assert len(frames._frames) == MAX_GRAPHS
    released = [g for g in device.graphs if g.released]
    assert len(released) == len(device.graphs) - MAX_GRAPHS
    assert device.graphs[0].released and not device.graphs[-1].released  # least recently used first
    assert len(frames._slots) <= MAX_GRAPHS  # slots no cached frame uses are freed


def test_stale_graphs_are_captured_again(stubs: dict[str, Path], offer: Offer,
                                         rng: np.random.Generator) -> None:
    """A TensorRT-like adapter: running on another batch's buffers makes the graph captured
    before stale; it is released and captured again, with the same frames."""
    engine, device = _frames(stubs, offer, stale_on_rebind=True)
    image, pose = _photo(rng)
    source = engine.source(image, pose)
    poses = _poses(pose, 2)
    first = source.run(poses[0])
    source.run_batch(poses)
    assert device.log.count("capture") == 2
    again = source.run(poses[0])
    assert device.log.count("capture") == 3 and device.graphs[0].released
    np.testing.assert_array_equal(again, first)


def test_photo_moves_in_only_when_it_changes(stubs: dict[str, Path], offer: Offer,
                                             rng: np.random.Generator) -> None:
    """Two photos of one size share the captured frame; each is copied in when it changes."""
    host = offer.host(stubs["keypoints"], threads=1, framing=False, required_joints=())
    engine, device = _frames(stubs, offer, "keypoints")
    (first, pose), (second, _) = _photo(rng), _photo(rng)
    a, b = engine.source(first, pose), engine.source(second, pose + 1.0)
    target = _poses(pose, 1)[0]
    a.run(target)
    device.log.clear()
    a.run(target)
    assert device.log.count("d2d") == 0
    out = b.run(target)
    assert device.log.count("d2d") == 2 and device.log.count("capture") == 0  # image and keypoints copied in
    np.testing.assert_array_equal(out, host.source(second, pose + 1.0).run(target))


# ------------------------------------------------------------------ the adapters' own logic (no GPU)
def test_torch_adapter_views_and_copies() -> None:
    """The torch adapter's block views and flat copies, on CPU tensors (the same calls it makes
    on CUDA tensors; its streams and graphs need a GPU)."""
    torch = pytest.importorskip("torch")
    from pyposert.backends.torch_backend import _TorchDevice

    backend = SimpleNamespace(_torch=torch, device="cpu")
    device = _TorchDevice(backend, None, "float16")  # type: ignore[arg-type]
    assert device.tensor_dtype("target_keypoints") == "float32" and device.tensor_dtype("source_image") == "float16"
    pose = device.allocate((2, 36, 5, 4), "float32")
    pose.copy_(torch.arange(pose.numel(), dtype=torch.float32).reshape(pose.shape))
    half = device.view(pose, (1, 0), (18, 5, 4))  # sample 1's source channels
    assert half.data_ptr() == pose[1].data_ptr() and torch.equal(half, pose[1, :18])
    device.copy(half, torch.ones(1, 18, 5, 4))  # [1, K, H, W] into a [K, H, W] block
    assert bool((pose[1, :18] == 1).all()) and bool((pose[1, 18:] > 1).all()) and bool((pose[0] != 1).any())
    host = np.zeros((2, 36, 5, 4), np.float32)
    device.copy(host, pose)
    np.testing.assert_array_equal(host, pose.numpy())
    with pytest.raises(ValueError, match="copy of"):
        device.copy(host, pose.half())


class _RecordingContext:
    """Stands in for a TensorRT execution context: records what the backend binds."""

    def __init__(self, accept_shapes: bool = True) -> None:
        self.calls: list[tuple[str, str]] = []
        self.accept_shapes = accept_shapes

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.calls.append(("shape", name))
        return self.accept_shapes

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.calls.append(("address", name))
        return True


def test_tensorrt_binding_makes_older_graphs_stale() -> None:
    """The TensorRT backend binds by address only when the buffers change, and a graph
    captured under an older binding is then stale (the pipeline captures it again)."""
    from pyposert.backends.tensorrt_backend import TensorRTBackend, _Graph, _TensorRTDevice
    from pyposert.model import TensorSpec

    backend = object.__new__(TensorRTBackend)  # no engine: only the binding bookkeeping runs
    backend.input_spec = {n: TensorSpec(n, (None, 3)) for n in ("source_image", "pose_heatmaps")}
    backend.output_spec = {"image": TensorSpec("image", (None, 3))}
    backend.max_batch, backend._binding, backend._epoch = 4, (), 0
    backend._context = context = _RecordingContext()
    device = object.__new__(_TensorRTDevice)
    device._backend = backend

    def buffers(base: int, batch: int) -> dict[str, Any]:
        return {n: SimpleNamespace(ptr=base + i, shape=(batch, 3)) for i, n in
                enumerate(("source_image", "pose_heatmaps", "image"))}

    one, two = buffers(1000, 1), buffers(2000, 2)
    backend._bind(one)
    assert len(context.calls) == 5 and backend._epoch == 1  # two shapes, three addresses
    graph = _Graph(None, backend._epoch)
    backend._bind(one)
    assert len(context.calls) == 5 and device.is_current(graph)  # bound so already: nothing to do
    backend._bind(two)
    assert backend._epoch == 2 and not device.is_current(graph)
    with pytest.raises(ValueError, match="needs a buffer for each"):
        backend._bind({"source_image": one["source_image"]})
    backend._context = _RecordingContext(accept_shapes=False)
    with pytest.raises(ValueError, match="rejected the shape"):
        backend._bind(one)
    assert backend._binding == ()  # half-bound: the next call binds again


# ------------------------------------------------------------------ on a GPU (skips without one)
@pytest.fixture(scope="module")
def warp_bundle(stubs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The warp stub (image = warped_source * warp_coverage) as a bundle with its ONNX graph and
    the same math as a torch.export program, dynamic batch."""
    torch = pytest.importorskip("torch")
    import io

    from pyposert.bundle import write_bundle
    from stub_models import stub_manifest

    class WarpStub(torch.nn.Module):
        def forward(self, source_image: Any, source_keypoints: Any, target_keypoints: Any, warped_source: Any,
                    warp_coverage: Any) -> Any:
            return warped_source * warp_coverage

    batch = torch.export.Dim("batch", min=1, max=8)
    example = (torch.zeros(2, 3, H, W), torch.zeros(2, 18, 2), torch.zeros(2, 18, 2), torch.zeros(2, 3, H, W),
               torch.zeros(2, 1, H, W))
    names = ("source_image", "source_keypoints", "target_keypoints", "warped_source", "warp_coverage")
    program = torch.export.export(WarpStub(), example, dynamic_shapes={n: {0: batch} for n in names})
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return write_bundle(tmp_path_factory.mktemp("warp_bundle") / "warp.plan", stub_manifest(H, W),
                        {"model.onnx": ("onnx", stubs["warp"].read_bytes(), None),
                         "model.pt2": ("torch-export", buffer.getvalue(), None)})


def test_warp_program_on_the_cpu_matches_onnxruntime(warp_bundle: Path, rng: np.random.Generator) -> None:
    """The bundle of the GPU test below, checked where it can run: torch on the CPU (host
    feeds) gives ONNX Runtime's frames."""
    image, pose = _photo(rng)
    poses = _poses(pose, 2)
    torch_cpu = Engine(warp_bundle, backend="torch", device="cpu", required_joints=())
    assert torch_cpu.device_frames is None  # torch on the CPU runs host feeds
    want = Engine(warp_bundle, backend="onnxruntime", required_joints=()).source(image, pose).run_batch(poses)
    for got, expected in zip(torch_cpu.source(image, pose).run_batch(poses), want):
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch_cuda(), reason="needs torch with CUDA and pyposert's CUDA kernels on a CUDA device")
def test_torch_cuda_device_frames_feed_the_warp(warp_bundle: Path, rng: np.random.Generator) -> None:
    """Torch on CUDA makes the warp inputs on the device (DeviceFrames): its frames agree with
    ONNX Runtime's host feeds within fp16 rounding, alone and batched."""
    engine = Engine(warp_bundle, required_joints=())  # auto: torch on CUDA (no TensorRT engine in the bundle)
    assert engine.backend == "torch" and engine.device_frames is not None
    reference = Engine(warp_bundle, backend="onnxruntime", required_joints=())
    image, pose = _photo(rng)
    poses = _poses(pose, 3)
    source, host = engine.source(image, pose), reference.source(image, pose)
    for _ in range(2):  # capture, then replays
        for p in poses:
            diff = np.abs(source.run(p).astype(int) - host.run(p).astype(int))
            assert diff.mean() < 1.0 and diff.max() <= 12  # fp16 warp and network
    for got, p in zip(source.run_batch(poses), poses):
        diff = np.abs(got.astype(int) - host.run(p).astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 12

"""One frame on the device: the pipeline the GPU backends share.

    frames = open_device_frames(backend, contract)             # None: frames go through the host
    photo = frames.load_source(crop_bgr, box, keypoints)       # once per photo
    images = frames.render(photo, targets, unletterbox=True)   # per batch of poses

A backend takes part by offering a :class:`DeviceAdapter` (``backend.device_adapter()``): its
memory, copies on its one stream, the network's ``execute`` and CUDA graphs. Everything else
is here, once, and reads the :class:`~pyposert.model.ModelContract`:

- which inputs the network takes and how each is made on the device (:data:`FRAME_INPUTS`):
  ``source_image`` and the source halves (``pose_heatmaps`` channels [0, K),
  ``source_keypoints``) once per photo, then copied into the batch's buffers when the photo
  changes; per frame the target keypoints upload, the target heatmaps (``ops.heatmaps`` into
  channels [K, 2K) of every sample, one launch) and the warp (``ops.warp`` ->
  ``warped_source``, ``warp_coverage``), each only when the network takes that input;
- the per-batch-size buffers (:class:`_Slot`), reused by every frame of that batch size;
- the frame after the network: ``ops.from_model_output`` per sample (unletterboxed to the
  photo's crop, or the model frame) and the copy to page-locked host memory;
- the cache of captured frames, keyed by (batch, letterbox, unletterbox), at most
  :data:`MAX_GRAPHS`, least recently used dropped first: the first frame of a key runs once
  uncaptured (warm-up: lazy loading, algorithm choice), is then captured and replayed; later
  frames only replay.

A network whose inputs are not all in :data:`FRAME_INPUTS` (completion) has no device frames:
the Engine runs it on host arrays (``backend.run``).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, Callable, ContextManager, Generic, Hashable, Iterator, Mapping, Optional,
                    Protocol, Sequence, TypeVar)

import numpy as np

from .. import ops
from ..model import OUTPUT_NAME, WARP_INPUTS, ModelContract

if TYPE_CHECKING:
    from ..ops import Letterbox
    from . import Backend

__all__ = ["FRAME_INPUTS", "MAX_GRAPHS", "DeviceAdapter", "DeviceFrames", "DeviceSource", "GraphCache",
           "capture_after_warmup", "open_device_frames"]

# The inputs this pipeline makes on the device. Adding an input: produce it in
# DeviceFrames._activate (made once per photo) or DeviceFrames._enqueue (per frame), and list it here.
FRAME_INPUTS = ("source_image", "pose_heatmaps", "source_keypoints", "target_keypoints") + WARP_INPUTS
MAX_GRAPHS = 4  # captured frames kept (a video uses one: one photo size, one batch size)

V = TypeVar("V")


class DeviceAdapter(Protocol):
    """What a GPU backend supplies to :class:`DeviceFrames`.

    Device arrays are what the backend allocates (anything :mod:`pyposert.ops` reads: a
    ``__cuda_array_interface__`` buffer, a torch CUDA tensor), C-contiguous. Every call
    enqueues on the adapter's one stream, in order; only :meth:`synchronize` waits.
    """

    stream: Any  # the stream pyposert.ops launches on (an int cudaStream_t, a torch.cuda.Stream)

    def session(self) -> ContextManager[None]:
        """Held around every use: serialises callers (shared with the backend's ``run``) and
        makes the backend's device (and stream) current on this thread."""

    def tensor_dtype(self, name: str) -> str:
        """numpy dtype name of the network's tensor ``name`` on the device ("float32" | "float16")."""

    def allocate(self, shape: Sequence[int], dtype: str) -> Any:
        """An uninitialised device array."""

    def pinned(self, shape: Sequence[int], dtype: str) -> np.ndarray:
        """An uninitialised page-locked host array (asynchronous, capturable copies)."""

    def copy(self, dst: Any, src: Any) -> None:
        """Enqueue a copy of ``src`` into ``dst``: host -> device, device -> host or device ->
        device (host arrays are numpy). Both C-contiguous, one dtype, as many elements; their
        shapes may differ ([3, H, W] into a [1, 3, H, W] block)."""

    def view(self, array: Any, start: Sequence[int], shape: Sequence[int]) -> Any:
        """The contiguous block of ``prod(shape)`` elements of ``array`` that starts at index
        ``start`` of its leading axes, shaped ``shape``: (b,), (3, H, W) is sample b of a
        [B, 3, H, W] array; (b, 0), (K, H, W) its channels [0, K) of a [B, 2K, H, W] one."""

    def execute(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        """Enqueue the network on device arrays named as in the contract, writing ``outputs``."""

    def capture(self, enqueue: Callable[[], None]) -> Any:
        """Capture what ``enqueue`` enqueues into a replayable graph (nothing runs)."""

    def replay(self, graph: Any) -> None:
        """Enqueue one run of a captured graph."""

    def is_current(self, graph: Any) -> bool:
        """False when ``graph`` can no longer be replayed as captured (TensorRT: the context was
        bound to other buffers since); it is then released and captured again."""

    def release(self, graph: Any) -> None:
        """Free a captured graph."""

    def synchronize(self) -> None:
        """Wait until everything enqueued has run."""


class GraphCache(Generic[V]):
    """At most ``size`` captured graphs (or what holds them) by key; the least recently used
    is dropped first, and ``release`` is called on it."""

    def __init__(self, size: int, release: Callable[[V], None]) -> None:
        if size < 1:
            raise ValueError(f"a graph cache holds at least one graph, got size={size}")
        self.size = size
        self._release = release
        self._items: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable) -> Optional[V]:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: Hashable, item: V) -> None:
        old = self._items.pop(key, None)
        if old is not None and old is not item:
            self._release(old)
        while len(self._items) >= self.size:
            self._release(self._items.popitem(last=False)[1])
        self._items[key] = item

    def clear(self) -> None:
        while self._items:
            self._release(self._items.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[V]:
        return iter(list(self._items.values()))


@dataclass(eq=False)
class DeviceSource:
    """A photo prepared on the device by :meth:`DeviceFrames.load_source`.

    Attributes:
        box: the photo's (crop's) letterbox into the model frame.
        model_input: [3, H, W] RGB in [-1, 1], the network's source_image dtype.
        keypoints: float32 [1, K, 2] (x, y) model pixels, missing -1.
        maps: [1, K, H, W] source heatmaps when the network takes ``pose_heatmaps``, else None.
    """

    box: "Letterbox"
    model_input: Any
    keypoints: Any
    maps: Any = None


@dataclass(eq=False)
class _Slot:
    """The device buffers of one batch size B, shared by its captured frames."""

    batch: int
    inputs: dict[str, Any]  # contract name -> [B, ...] device array
    outputs: dict[str, Any]  # output name -> [B, ...] device array
    target: Any  # float32 [B, K, 2] device: the target_keypoints input itself, or the heatmaps' scratch
    host_target: np.ndarray  # float32 [B, K, 2] page-locked
    active: Optional["weakref.ref[DeviceSource]"] = None  # the photo whose tensors are in ``inputs``


@dataclass(eq=False)
class _Frame:
    """A captured frame for one (batch, letterbox, unletterbox)."""

    slot: _Slot
    box: "Letterbox"
    unletterbox: bool
    pixels: Any  # uint8 [B, h, w, 3] device
    host_pixels: np.ndarray  # uint8 [B, h, w, 3] page-locked
    graph: Any = None


class DeviceFrames:
    """Pose transfer with the whole frame on the device, over a backend's :class:`DeviceAdapter`.

    Safe to call from several threads: every call runs inside the adapter's ``session``, one
    at a time (the backend's ``run`` shares it).
    """

    def __init__(self, adapter: DeviceAdapter, contract: ModelContract) -> None:
        unknown = sorted(set(contract.inputs) - set(FRAME_INPUTS))
        if unknown:
            raise ValueError(f"device frames make the inputs {list(FRAME_INPUTS)}; this network also takes {unknown}")
        warp = [n for n in WARP_INPUTS if contract.has(n)]
        self._dtypes = {n: adapter.tensor_dtype(n) for n in list(contract.inputs) + list(contract.outputs)}
        if any(self._dtypes[n] != self._dtypes["source_image"] for n in warp):
            raise ValueError(f"the device warp writes {warp} in source_image's dtype ({self._dtypes['source_image']}); "
                             f"this network takes {[self._dtypes[n] for n in warp]}")
        self._adapter = adapter
        self._contract = contract
        self._slots: dict[int, _Slot] = {}
        self._frames: GraphCache[_Frame] = GraphCache(MAX_GRAPHS, self._drop)

    @staticmethod
    def supports(contract: ModelContract) -> bool:
        """True when every input of the network is one this pipeline makes."""
        return bool(contract.inputs) and set(contract.inputs) <= set(FRAME_INPUTS)

    # ------------------------------------------------------------------ per photo
    def load_source(self, image: np.ndarray, box: "Letterbox", source_keypoints: np.ndarray) -> DeviceSource:
        """Upload the photo and make everything that depends only on it.

        image: uint8 [h, w, 3] BGR (the crop the network sees), C-contiguous; box: its
        letterbox into the model frame; source_keypoints: float32 (K, 2) (x, y) model pixels,
        missing -1.
        """
        c, a = self._contract, self._adapter
        h, w = c.height, c.width
        image = np.ascontiguousarray(image)
        kp = np.ascontiguousarray(source_keypoints, dtype=np.float32).reshape(1, c.joints, 2)
        with a.session():
            pixels = a.allocate(image.shape, "uint8")
            a.copy(pixels, image)
            dtype = self._dtypes["source_image"]
            model_input = a.allocate((3, h, w), dtype)
            ops.to_model_input(pixels, h, w, dtype=dtype, out=model_input, stream=a.stream)
            keypoints = a.allocate(kp.shape, "float32")
            a.copy(keypoints, kp)
            maps = None
            if c.has("pose_heatmaps"):
                maps = a.allocate((1, c.joints, h, w), self._dtypes["pose_heatmaps"])
                self._heatmaps(keypoints, maps, 0)
            a.synchronize()  # ``image`` and ``pixels`` must outlive the copies
        return DeviceSource(box, model_input, keypoints, maps)

    # ------------------------------------------------------------------ per frame
    def render(self, source: DeviceSource, target_keypoints: np.ndarray, *, unletterbox: bool) -> list[np.ndarray]:
        """target_keypoints: float32 [B, K, 2] (x, y) model pixels -> B uint8 [h, w, 3] BGR:
        the photo's crop size when ``unletterbox``, else the model frame H x W."""
        targets = np.ascontiguousarray(target_keypoints, dtype=np.float32)
        if targets.ndim != 3 or targets.shape[0] < 1 or targets.shape[1:] != (self._contract.joints, 2):
            raise ValueError(f"target_keypoints must be [B >= 1, {self._contract.joints}, 2] (x, y), "
                             f"got {list(targets.shape)}")
        a, batch, unletterbox = self._adapter, int(targets.shape[0]), bool(unletterbox)
        with a.session():
            slot = self._slot(batch)
            self._activate(slot, source)
            np.copyto(slot.host_target, targets)
            key = (batch, source.box, unletterbox)
            frame = self._frames.get(key)
            if frame is None:
                frame = self._new_frame(slot, source.box, unletterbox)
                self._capture(frame)
                self._frames.put(key, frame)
                used = {id(f.slot) for f in self._frames}  # buffers of evicted frames go with them
                self._slots = {b: s for b, s in self._slots.items() if id(s) in used}
            elif not a.is_current(frame.graph):
                graph, frame.graph = frame.graph, None
                a.release(graph)
                self._capture(frame)
            a.replay(frame.graph)
            a.synchronize()
            return [frame.host_pixels[b].copy() for b in range(batch)]

    # ------------------------------------------------------------------ buffers
    def _slot(self, batch: int) -> _Slot:
        """The buffers of ``batch`` (made on first use)."""
        slot = self._slots.get(batch)
        if slot is None:
            a, c = self._adapter, self._contract
            inputs = {n: a.allocate((batch,) + c.shape(n), self._dtypes[n]) for n in c.inputs}
            outputs = {n: a.allocate((batch,) + self._output_shape(n), self._dtypes[n]) for n in c.outputs}
            shape = (batch, c.joints, 2)
            target = inputs["target_keypoints"] if c.has("target_keypoints") else a.allocate(shape, "float32")
            slot = self._slots[batch] = _Slot(batch, inputs, outputs, target, a.pinned(shape, "float32"))
        return slot

    def _output_shape(self, name: str) -> tuple[int, ...]:
        """An output's shape after the batch axis: the contract's, or for an output the
        contract does not name (an extra head) the network's, which must then be fixed."""
        spec = self._contract.outputs[name]
        try:
            return self._contract.shape(name)
        except KeyError:
            if any(d is None for d in spec.shape[1:]):
                raise ValueError(f"the network's output {spec.describe()} needs fixed dimensions after the batch "
                                 f"axis to run with device frames") from None
            return tuple(int(d) for d in spec.shape[1:])  # type: ignore[arg-type]

    def _new_frame(self, slot: _Slot, box: "Letterbox", unletterbox: bool) -> _Frame:
        h, w = (box.src_height, box.src_width) if unletterbox else (box.height, box.width)
        shape = (slot.batch, h, w, 3)
        return _Frame(slot, box, unletterbox, self._adapter.allocate(shape, "uint8"),
                      self._adapter.pinned(shape, "uint8"))

    def _drop(self, frame: _Frame) -> None:
        if frame.graph is not None:
            self._adapter.release(frame.graph)

    def close(self) -> None:
        """Release every captured frame and buffer (the backend closes after)."""
        with self._adapter.session():
            self._frames.clear()
            self._slots.clear()

    # ------------------------------------------------------------------ the steps
    def _activate(self, slot: _Slot, source: DeviceSource) -> None:
        """Copy the photo's device tensors into every sample of the slot's inputs (device to
        device, only when the photo changes): a captured frame keeps its buffers' addresses,
        so the photo moves in rather than being bound."""
        if slot.active is not None and slot.active() is source:
            return
        a, c = self._adapter, self._contract
        joints, h, w = c.joints, c.height, c.width
        for b in range(slot.batch):
            a.copy(a.view(slot.inputs["source_image"], (b,), (3, h, w)), source.model_input)
            if c.has("pose_heatmaps"):  # the source half, channels [0, K) of sample b
                a.copy(a.view(slot.inputs["pose_heatmaps"], (b, 0), (joints, h, w)), source.maps)
            if c.has("source_keypoints"):
                a.copy(a.view(slot.inputs["source_keypoints"], (b,), (joints, 2)), source.keypoints)
        slot.active = weakref.ref(source)

    def _enqueue(self, frame: _Frame) -> None:
        """Everything of one frame after the photo's copies, enqueued on the adapter's stream
        (run once as warm-up, then captured and replayed)."""
        a, c, slot = self._adapter, self._contract, frame.slot
        a.copy(slot.target, slot.host_target)
        if c.has("pose_heatmaps"):  # the target half, channels [K, 2K) of every sample, one launch
            self._heatmaps(slot.target, slot.inputs["pose_heatmaps"], c.joints)
        if c.has(WARP_INPUTS[0]):  # the keypoint contract: its source_keypoints are in the slot
            warped, coverage = (slot.inputs[n] for n in WARP_INPUTS)
            ops.warp(slot.inputs["source_image"], slot.inputs["source_keypoints"], slot.target, c.height, c.width,
                     out=warped, coverage=coverage, stream=a.stream)
        a.execute(slot.inputs, slot.outputs)
        image = slot.outputs[OUTPUT_NAME]
        out_shape = tuple(int(d) for d in frame.host_pixels.shape[1:])
        for b in range(slot.batch):
            ops.from_model_output(a.view(image, (b,), (3, c.height, c.width)), frame.box,
                                  unletterbox=frame.unletterbox, out=a.view(frame.pixels, (b,), out_shape),
                                  stream=a.stream)
        a.copy(frame.host_pixels, frame.pixels)

    def _capture(self, frame: _Frame) -> None:
        frame.graph = capture_after_warmup(self._adapter, lambda: self._enqueue(frame))

    def _heatmaps(self, keypoints: Any, out: Any, channel_offset: int) -> None:
        c, hm = self._contract, self._contract.heatmap
        ops.heatmaps(keypoints, c.height, c.width, mode=hm.mode, sigma=hm.sigma, radius=hm.radius,
                     dtype=self._dtypes["pose_heatmaps"], out=out, channel_offset=channel_offset,
                     stream=self._adapter.stream)


def capture_after_warmup(adapter: DeviceAdapter, enqueue: Callable[[], None]) -> Any:
    """Run ``enqueue`` once uncaptured (lazy module loading and algorithm choice happen
    outside the graph), wait for it, then capture it: the replayable graph."""
    enqueue()
    adapter.synchronize()
    return adapter.capture(enqueue)


def open_device_frames(backend: "Backend", contract: ModelContract) -> Optional[DeviceFrames]:
    """The device-frame pipeline of ``backend`` for ``contract``, or None when the backend
    offers no :class:`DeviceAdapter` (a CPU backend) or the network takes an input this
    pipeline does not make (completion)."""
    adapter = backend.device_adapter()
    if adapter is None or not DeviceFrames.supports(contract):
        return None
    return DeviceFrames(adapter, contract)

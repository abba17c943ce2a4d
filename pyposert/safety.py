"""The loading policy for untrusted model files: what pyposert checks before any payload
reaches a framework, so that opening a file never runs code from it and never reads a file
outside it. Standard library only (no numpy, torch or onnxruntime), so the checks run before
any framework is imported.

- :func:`open_regular`: model paths must be regular files; named pipes, devices, sockets and
  folders are refused before a blocking read could hang on them.
- :func:`check_zip`: a zip archive (a ``.plan`` bundle, a ``torch.export`` program) may hold
  only plain stored files with portable relative names: no ``..`` or absolute names, no
  duplicates, no symlinks or folders, no compression or encryption, and no entry larger than
  the archive itself (so a zip bomb cannot claim memory).
- :func:`load_json`: JSON with bounded nesting, bounded numbers, no NaN/Infinity and no
  duplicate keys (a manifest bomb is a PlanError, not a RecursionError).
- :func:`check_onnx`: an ONNX model may not reference external data: every tensor must be
  stored inside the model (ONNX Runtime would otherwise read a file named by the model,
  relative to the working directory when the model comes from bytes).
- :func:`sanitize_torch_program`: a ``torch.export`` archive is rebuilt from the entries the
  loader needs, after checking that none is a pickle (weights and constants must be raw
  tensor bytes), that every graph node calls an operator (``torch.ops.aten/prims/pyposert``,
  never an arbitrary Python function such as ``os.system``) and that every symbolic shape is
  a plain arithmetic expression (torch parses them with ``sympy.sympify``, i.e. ``eval``).
  The pickled example inputs, which the program does not need to run, are dropped.

Every refusal raises :class:`pyposert.errors.PlanError` naming the file and what is wrong.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import zipfile
from typing import Any, BinaryIO, Iterator, Union

from .errors import PlanError

__all__ = ["check_onnx", "check_zip", "load_json", "open_regular", "sanitize_torch_program"]

PathLike = Union[str, "os.PathLike[str]"]

MAX_JSON_DEPTH = 64  # exported programs nest ~20 deep; manifests ~5
MAX_NUMBER_CHARS = 40  # longer than any float repr or 64-bit integer
MAX_ZIP_ENTRIES = 4096


# ------------------------------------------------------------------ files
def open_regular(path: PathLike, what: str = "model file") -> BinaryIO:
    """Open ``path`` for binary reading if (and only if) it is a regular file.

    The open itself is non-blocking (a named pipe swapped in after the check cannot hang it)
    and the opened descriptor is checked again, so there is no window between check and use.

    Raises:
        FileNotFoundError: no such file.
        PlanError: a folder, named pipe, device or socket.
        OSError: the file exists but cannot be read (permissions).
    """
    shown = os.fspath(path)
    try:
        st = os.stat(shown)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such {what}: {shown}") from None
    _require_regular(st.st_mode, shown, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(shown, flags)
    try:
        _require_regular(os.fstat(fd).st_mode, shown, what)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _require_regular(mode: int, shown: str, what: str) -> None:
    if stat.S_ISDIR(mode):
        raise PlanError(f"{shown} is a directory; expected a {what} (a .plan bundle or an .onnx file)")
    if not stat.S_ISREG(mode):
        kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise PlanError(f"{shown} is {kind}, not a regular file; a {what} must be a regular file")


# ------------------------------------------------------------------ zip archives
_PORTABLE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def _check_entry_name(name: str, where: str) -> None:
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or "\x00" in name or re.match(r"^[A-Za-z]:", name)
            or any(p in ("", ".", "..") for p in parts) or not all(_PORTABLE_NAME.match(p) for p in parts)):
        raise PlanError(f"{where} is refused: archive entry {name!r} is not a plain relative name "
                        "(absolute paths, '..', folders and unusual characters are not allowed)")


def check_zip(zf: zipfile.ZipFile, archive_size: int, where: str) -> list[zipfile.ZipInfo]:
    """Check every entry of an opened archive (see the module docstring); returns them.

    ``archive_size`` is the archive's size in bytes: no entry, and not all entries together,
    may hold more than that (stored entries cannot), which rules out zip bombs and entries
    that overlap to multiply one block of data.
    """
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise PlanError(f"{where} is refused: {len(infos)} archive entries (at most {MAX_ZIP_ENTRIES})")
    seen: set[str] = set()
    total = 0
    for info in infos:
        raw_name = info.orig_filename
        _check_entry_name(raw_name, where)
        if raw_name != info.filename:
            _check_entry_name(info.filename, where)
        if info.filename in seen:
            raise PlanError(f"{where} is refused: archive entry {info.filename!r} appears twice")
        seen.add(info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if info.is_dir() or (kind and kind != stat.S_IFREG):
            what = "a symbolic link" if kind == stat.S_IFLNK else "not a regular file"
            raise PlanError(f"{where} is refused: archive entry {info.filename!r} is {what}")
        if info.flag_bits & 0x41:  # bit 0: encrypted, bit 6: strong encryption
            raise PlanError(f"{where} is refused: archive entry {info.filename!r} is encrypted")
        if info.compress_type != zipfile.ZIP_STORED:
            raise PlanError(f"{where} is refused: archive entry {info.filename!r} is compressed; every entry must "
                            "be stored (uncompressed)")
        if info.file_size != info.compress_size or info.header_offset + info.compress_size > archive_size:
            raise PlanError(f"{where} is refused: archive entry {info.filename!r} declares {info.file_size} bytes "
                            f"({info.compress_size} stored), which a {archive_size}-byte archive of stored entries "
                            "cannot hold")
        total += info.file_size
        if total > archive_size:
            raise PlanError(f"{where} is refused: its entries declare more bytes than the archive holds "
                            "(overlapping entries)")
    return infos


# ------------------------------------------------------------------ JSON
class _Refused(ValueError):
    """Raised from inside json.loads hooks; turned into a PlanError by load_json."""


def _json_depth_exceeds(text: str, limit: int) -> bool:
    """True when brackets nest deeper than ``limit`` (strings skipped). Counted without
    recursion, so a hostile '[[[[...' is measured instead of crashing the parser."""
    skeleton = re.sub(r'"(?:[^"\\]|\\.)*"', "", text)
    depth = 0
    for char in re.sub(r"[^\[\]{}]", "", skeleton):
        depth += 1 if char in "[{" else -1
        if depth > limit:
            return True
    return False


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number with {len(text)} digits")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number written with {len(text)} characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused(f"the number {text} is out of range")
    return value


def _parse_constant(text: str) -> Any:
    raise _Refused(f"{text} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def load_json(raw: bytes, what: str, where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON bytes (UTF-8). PlanError "<where>: <what> is not valid JSON: ..."
    for malformed text, nesting deeper than ``max_depth``, numbers longer than 40 characters,
    NaN/Infinity or a duplicated key."""
    try:
        text = raw.decode("utf-8")
        if _json_depth_exceeds(text, max_depth):
            raise _Refused(f"nested deeper than {max_depth} levels")
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant,
                          object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError and _Refused are ValueErrors
        raise PlanError(f"{where}: {what} is not valid JSON ({exc})") from None


# ------------------------------------------------------------------ ONNX
# Field numbers of onnx.proto3 (stable since ONNX 1.0; see onnx/onnx.proto). Only the
# messages that can hold a TensorProto are walked.
_MODEL_GRAPH, _MODEL_TRAINING, _MODEL_FUNCTIONS = 7, 20, 25
_TRAINING_GRAPHS = (1, 2)  # TrainingInfoProto.initialization / algorithm
_GRAPH_NODE, _GRAPH_INIT, _GRAPH_SPARSE_INIT = 1, 5, 15
_NODE_ATTRIBUTE = 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_FUNCTION_NODE, _FUNCTION_ATTRIBUTE_PROTO = 7, 11  # FunctionProto.attribute_proto: defaults, may hold tensors
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_MAX_PROTO_DEPTH = 64


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or payload start, payload end) of one message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, pos
        elif wire == 1:
            pos += 8
            yield number, wire, 0, pos
        elif wire == 5:
            pos += 4
            yield number, wire, 0, pos
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise ValueError("a field runs past the end of its message")
            yield number, wire, pos, pos + length
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("a field runs past the end of its message")


def _tensor(buf: memoryview, start: int, end: int, where: str) -> None:
    name = ""
    for number, wire, a, b in _fields(buf, start, end):
        if number == _TENSOR_NAME and wire == 2:
            name = bytes(buf[a:b]).decode("utf-8", "replace")
        elif number == _TENSOR_EXTERNAL_DATA or (number == _TENSOR_DATA_LOCATION and (wire != 0 or a != 0)):
            # Any encoding of either field counts: a parser more lenient than this one must
            # not find a reference this walk missed.
            raise PlanError(f"{where} is refused: tensor {name or '(unnamed)'!r} refers to external data (a file "
                            "outside the model); pyposert loads only models whose weights are stored inside them")


def _walk(buf: memoryview, start: int, end: int, message: str, where: str, depth: int) -> None:
    if depth > _MAX_PROTO_DEPTH:
        raise ValueError(f"subgraphs nested deeper than {_MAX_PROTO_DEPTH} levels")
    children: dict[str, dict[int, str]] = {
        "model": {_MODEL_GRAPH: "graph", _MODEL_TRAINING: "training", _MODEL_FUNCTIONS: "function"},
        "training": {n: "graph" for n in _TRAINING_GRAPHS},
        "graph": {_GRAPH_NODE: "node", _GRAPH_INIT: "tensor", _GRAPH_SPARSE_INIT: "sparse"},
        "function": {_FUNCTION_NODE: "node", _FUNCTION_ATTRIBUTE_PROTO: "attribute"},
        "node": {_NODE_ATTRIBUTE: "attribute"},
        "attribute": {_ATTR_T: "tensor", _ATTR_G: "graph", _ATTR_TENSORS: "tensor", _ATTR_GRAPHS: "graph",
                      _ATTR_SPARSE: "sparse", _ATTR_SPARSES: "sparse"},
        "sparse": {_SPARSE_VALUES: "tensor", _SPARSE_INDICES: "tensor"},
    }
    table = children[message]
    for number, wire, a, b in _fields(buf, start, end):
        child = table.get(number)
        if child is None or wire != 2:
            continue
        if child == "tensor":
            _tensor(buf, a, b, where)
        else:
            _walk(buf, a, b, child, where, depth + 1)


def check_onnx(data: bytes, where: str) -> None:
    """Refuse an ONNX model (serialized ModelProto) that references external data anywhere:
    graph initialisers, sparse initialisers, Constant-node and other tensor attributes, in
    subgraphs (If/Loop/Scan bodies), functions and training graphs. PlanError otherwise also
    for bytes that are not a well-formed protobuf."""
    buf = memoryview(data)
    try:
        _walk(buf, 0, len(buf), "model", where, 0)
    except ValueError as exc:
        if isinstance(exc, PlanError):
            raise
        raise PlanError(f"cannot load {where}: not a valid ONNX model ({exc})") from None


# ------------------------------------------------------------------ torch.export programs
_PT2_FIXED = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id",
              "models/model.json", "data/weights/model_weights_config.json",
              "data/constants/model_constants_config.json", "data/sample_inputs/model.pt"}
_PT2_TENSOR = re.compile(r"^data/(weights/weight_|constants/tensor_)\d+$")
_SAMPLE_INPUTS = "data/sample_inputs/model.pt"
# Graph node targets: operators only. aten/prims hold the tensor maths; pyposert::* are ours
# (registered in pyposert.torch_ops). Anything else (a Python function reachable from torch,
# math or operator, e.g. torch.serialization.os.system) would be called with arguments from
# the file when the program runs.
_OP_TARGET = re.compile(r"^torch\.ops\.(aten|prims|pyposert)\.[A-Za-z][A-Za-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*$")
_SYM_TARGET = re.compile(r"^(_operator\.(getitem|add|sub|mul|floordiv|truediv|mod|pow|neg|eq|ne|lt|le|gt|ge|"
                         r"and_|or_|not_)|math\.(ceil|floor|trunc|sqrt)|torch\.sym_(int|float|max|min|not|sqrt|"
                         r"ite|sum))$")
# aten operators that reach outside the tensors they are given (files, stdout).
_OP_DENIED = re.compile(r"from_file|save|load|print", re.I)
# Symbolic shapes ("Symbol('s77', positive=True, integer=True)", "2*s0 + 1", "Max(1, s3)"):
# numbers, operators, quoted symbol names and a fixed vocabulary, no attribute access.
_SYM_TOKEN = re.compile(r"\s*(?:(\d+\.\d*(?:e[-+]?\d+)?|\d+)|([A-Za-z_][A-Za-z0-9_]*)|('[A-Za-z][A-Za-z0-9_]*')|"
                        r"(\*\*|//|==|!=|<=|>=|[-+*/%(),<>=]))")
_SYM_WORDS = frozenset({
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Max", "Min", "Abs", "Eq", "Ne", "Lt", "Le", "Gt",
    "Ge", "And", "Or", "Not", "oo", "zoo", "nan", "True", "False", "positive", "negative", "nonnegative",
    "nonpositive", "integer", "real", "finite", "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod",
    "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow",
    "FloatTrueDiv", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt",
    "RoundDecimal", "ToFloat", "Identity", "floor", "ceiling", "sqrt"})
_SYM_NAME = re.compile(r"^[a-z]{1,8}\d+$")  # s0, s77, u3, zuf0, ...


def _safe_sym_expr(text: str) -> bool:
    if len(text) > 4096:
        return False
    pos = 0
    while pos < len(text):
        m = _SYM_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            return text[pos:].strip() == ""
        word = m.group(2)
        if word is not None and word not in _SYM_WORDS and not _SYM_NAME.match(word):
            return False
        pos = m.end()
    return True


def _check_program_json(node: Any, where: str) -> None:
    """Walk the exported program's JSON without recursion (its depth is bounded by load_json
    anyway) and check every node target and symbolic expression."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "target" and isinstance(value, str):
                    if not ((_OP_TARGET.match(value) and not _OP_DENIED.search(value)) or _SYM_TARGET.match(value)):
                        raise PlanError(f"{where} is refused: its graph calls {value!r}, which is not a tensor "
                                        "operator pyposert allows")
                elif key == "expr_str" and isinstance(value, str) and not _safe_sym_expr(value):
                    raise PlanError(f"{where} is refused: symbolic shape {value[:80]!r} is not a plain arithmetic "
                                    "expression")
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _check_payload_config(config: Any, prefix: str, names: set[str], where: str) -> None:
    if not isinstance(config, dict) or set(config) != {"config"} or not isinstance(config["config"], dict):
        raise PlanError(f"{where} is refused: malformed {prefix} config")
    for fqn, meta in config["config"].items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise PlanError(f"{where} is refused: {fqn!r} is stored as a pickle (which can run code when loaded); "
                            "pyposert loads only raw tensor data")
        path = meta.get("path_name")
        if not isinstance(path, str) or f"{prefix}{path}" not in names or not _PT2_TENSOR.match(f"{prefix}{path}"):
            raise PlanError(f"{where} is refused: {fqn!r} points to {path!r}, which is not a tensor entry of the "
                            "archive")
        if not isinstance(meta.get("tensor_meta"), dict):
            raise PlanError(f"{where} is refused: {fqn!r} has no tensor description")


def sanitize_torch_program(data: bytes, where: str) -> bytes:
    """Check a ``torch.export`` archive (``torch.export.save`` output) and return a rebuilt
    copy that ``torch.export.load`` can read without unpickling anything.

    Raises PlanError for anything outside the policy (see the module docstring): a pickled
    weight or constant, a custom or opaque object, an entry the loader does not need, a
    graph that calls a non-operator, an expression that is not arithmetic, or a malformed
    archive.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise PlanError(f"{where} is not a torch.export archive ({exc})") from None
    try:
        with zf:
            return _sanitize(zf, len(data), where)
    except (zipfile.BadZipFile, EOFError, NotImplementedError, OSError) as exc:  # damaged entries, read lazily
        raise PlanError(f"{where} is not a readable torch.export archive ({exc})") from None


def _sanitize(zf: zipfile.ZipFile, size: int, where: str) -> bytes:
    """sanitize_torch_program on an opened archive of ``size`` bytes."""
    infos = check_zip(zf, size, where)
    roots = {i.filename.split("/", 1)[0] for i in infos}
    if len(roots) != 1 or any("/" not in i.filename for i in infos):
        raise PlanError(f"{where} is not a torch.export archive (entries must share one top folder)")
    root = roots.pop()
    names = {i.filename[len(root) + 1:] for i in infos}
    for name in sorted(names):
        if name not in _PT2_FIXED and not _PT2_TENSOR.match(name):
            raise PlanError(f"{where} is refused: unexpected archive entry {name!r} (pyposert loads only the "
                            "program, its raw tensors and their configs)")
    missing = {"archive_format", "archive_version", "models/model.json", "data/weights/model_weights_config.json",
               "data/constants/model_constants_config.json"} - names

    def read(name: str) -> bytes:
        return zf.read(f"{root}/{name}")

    if missing:
        raise PlanError(f"{where} is not a torch.export archive (missing {sorted(missing)})")
    if read("archive_format").strip() != b"pt2":
        raise PlanError(f"{where} is not a torch.export archive (archive_format is not 'pt2')")
    program = load_json(read("models/model.json"), "the exported program", where)
    _check_program_json(program, where)
    _check_payload_config(load_json(read("data/weights/model_weights_config.json"), "the weights config", where),
                          "data/weights/", names, where)
    _check_payload_config(load_json(read("data/constants/model_constants_config.json"), "the constants config",
                                    where), "data/constants/", names, where)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as w:
        for name in sorted(names):
            # The example inputs are always a pickle; the program runs without them (the
            # loader reads an empty entry as "none").
            w.writestr(f"{root}/{name}", b"" if name == _SAMPLE_INPUTS else read(name))
        if _SAMPLE_INPUTS not in names:
            w.writestr(f"{root}/{_SAMPLE_INPUTS}", b"")
    return out.getvalue()

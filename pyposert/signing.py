"""Optional bundle signatures: Ed25519 (RFC 8032) over the exact bytes of ``manifest.json``.

The manifest lists every payload's SHA-256, and every payload is hash-checked when it is read,
so a valid signature over the manifest vouches for the whole bundle. A signed bundle carries
one more archive entry, ``manifest.sig``::

    {"algorithm": "ed25519", "public_key": "<64 hex digits>", "signature": "<128 hex digits>"}

Signatures are checked only when asked for: ``Engine(path, trusted_keys=[...])`` or the
environment variable ``POSERT_TRUSTED_KEYS`` (public keys as hex, separated by commas or
whitespace). Then an unsigned bundle, a bad signature or a key not in the list is a
:class:`~pyposert.errors.PlanError`, and bare ``.onnx`` files are refused (only bundles can
be signed).

    seed = signing.generate_key()                       # 32 secret bytes: keep them private
    signing.sign_bundle("model.plan", seed)              # adds manifest.sig (rewrites the file)
    signing.public_key(seed).hex()                       # what users put in POSERT_TRUSTED_KEYS

or on the command line: ``pyposert keygen --out release.key`` (prints the public key), then
``pyposert sign --model model.plan --key release.key``.

The arithmetic is RFC 8032's reference (section 6) in plain Python (the runtime needs no
cryptography package): verification takes a few milliseconds. Signing is not constant-time:
sign release bundles on a machine you trust, not on a shared server.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
from typing import Any, Iterable, Optional, Union

from .errors import PlanError

__all__ = ["SIGNATURE_NAME", "TRUSTED_KEYS_ENV", "generate_key", "parse_trusted_keys", "public_key", "sign",
           "sign_bundle", "trusted_keys_from_env", "verify", "verify_manifest"]

SIGNATURE_NAME = "manifest.sig"
TRUSTED_KEYS_ENV = "POSERT_TRUSTED_KEYS"

# ------------------------------------------------------------------ RFC 8032, section 6
_P = 2 ** 255 - 19
_Q = 2 ** 252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_Point = tuple  # extended coordinates (X, Y, Z, T)


def _add(p: _Point, q: _Point) -> _Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, p: _Point) -> _Point:
    q: _Point = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _equal(p: _Point, q: _Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


def _recover_x(y: int, sign: int) -> Optional[int]:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
assert _GX is not None
_G: _Point = (_GX, _GY, 1, _GX * _GY % _P)


def _compress(p: _Point) -> bytes:
    zinv = pow(p[2], _P - 2, _P)
    x, y = p[0] * zinv % _P, p[1] * zinv % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _decompress(s: bytes) -> Optional[_Point]:
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


def _expand(seed: bytes) -> tuple[int, bytes]:
    if len(seed) != 32:
        raise ValueError(f"an Ed25519 secret key is 32 bytes, got {len(seed)}")
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def _hash_mod_q(data: bytes) -> int:
    return int.from_bytes(hashlib.sha512(data).digest(), "little") % _Q


def generate_key() -> bytes:
    """A new secret key (32 random bytes from the operating system)."""
    return secrets.token_bytes(32)


def public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a secret key."""
    a, _ = _expand(seed)
    return _compress(_mul(a, _G))


def sign(seed: bytes, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message``."""
    a, prefix = _expand(seed)
    pub = _compress(_mul(a, _G))
    r = _hash_mod_q(prefix + message)
    big_r = _compress(_mul(r, _G))
    h = _hash_mod_q(big_r + pub + message)
    return big_r + int.to_bytes((r + h * a) % _Q, 32, "little")


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``public``'s valid Ed25519 signature of ``message``."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _Q:
        return False
    h = _hash_mod_q(signature[:32] + public + message)
    return _equal(_mul(s, _G), _add(r, _mul(h, a)))


# ------------------------------------------------------------------ bundles
KeysLike = Union[str, bytes, Iterable[Union[str, bytes]]]


def parse_trusted_keys(keys: KeysLike) -> frozenset[bytes]:
    """Public keys given as 32 raw bytes or 64 hex digits, alone or in an iterable (a string
    may hold several, separated by commas or whitespace). ValueError for anything else."""
    items: list[Union[str, bytes]]
    if isinstance(keys, bytes):
        items = [keys]
    elif isinstance(keys, str):
        items = [k for k in re.split(r"[\s,]+", keys) if k]
    else:
        items = list(keys)
    out: set[bytes] = set()
    for key in items:
        if isinstance(key, bytes) and len(key) == 32:
            out.add(key)
        elif isinstance(key, str) and re.fullmatch(r"[0-9a-fA-F]{64}", key.strip()):
            out.add(bytes.fromhex(key.strip()))
        else:
            raise ValueError(f"a trusted key is an Ed25519 public key: 64 hex digits or 32 bytes, got {key!r}")
    if not out:
        raise ValueError("trusted_keys is empty: give at least one public key")
    return frozenset(out)


def trusted_keys_from_env() -> Optional[frozenset[bytes]]:
    """The keys of ``POSERT_TRUSTED_KEYS`` (None when unset or empty)."""
    value = os.environ.get(TRUSTED_KEYS_ENV, "").strip()
    if not value:
        return None
    try:
        return parse_trusted_keys(value)
    except ValueError as exc:
        raise ValueError(f"{TRUSTED_KEYS_ENV}: {exc}") from None


def verify_manifest(manifest: bytes, signature_entry: Optional[bytes], trusted: frozenset[bytes],
                    where: str) -> bytes:
    """Check ``manifest.sig`` against the manifest bytes and the trusted keys; returns the
    signer's public key. PlanError when unsigned, malformed, untrusted or invalid."""
    if signature_entry is None:
        raise PlanError(f"{where} is not signed, and signed bundles are required ({TRUSTED_KEYS_ENV} or "
                        "trusted_keys=); sign it with pyposert.signing.sign_bundle")
    try:
        entry = json.loads(signature_entry.decode("utf-8"))
        if not isinstance(entry, dict) or entry.get("algorithm") != "ed25519":
            raise ValueError("algorithm must be 'ed25519'")
        public = bytes.fromhex(str(entry["public_key"]))
        signature = bytes.fromhex(str(entry["signature"]))
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise PlanError(f"{where}: {SIGNATURE_NAME} is malformed ({exc})") from None
    if public not in trusted:
        raise PlanError(f"{where} is signed by key {public.hex()}, which is not a trusted key")
    if not verify(public, manifest, signature):
        raise PlanError(f"{where}: the signature does not match the manifest (the file was modified after "
                        "signing, or the signature is forged)")
    return public


def sign_bundle(path: Union[str, "os.PathLike[str]"], seed: bytes) -> None:
    """Add (or replace) ``manifest.sig`` in a bundle, signing its manifest with ``seed``.
    The bundle is read and checked first; the file is rewritten atomically."""
    import zipfile

    from .bundle import MANIFEST_NAME, _entry, read_bundle

    bundle = read_bundle(path)
    with zipfile.ZipFile(bundle.path) as zf:
        entries = [(i.filename, zf.read(i)) for i in zf.infolist() if i.filename != SIGNATURE_NAME]
    manifest = dict(entries)[MANIFEST_NAME]
    entry = {"algorithm": "ed25519", "public_key": public_key(seed).hex(), "signature": sign(seed, manifest).hex()}
    tmp = bundle.path.with_name(f".{bundle.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
                for name, data in entries:
                    zf.writestr(_entry(name), data)
                zf.writestr(_entry(SIGNATURE_NAME), json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, bundle.path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ command line
def add_sign_parsers(subparsers: Any) -> None:
    """Register ``pyposert keygen`` and ``pyposert sign`` (used by cli.py)."""
    keygen = subparsers.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    keygen.add_argument("--out", required=True, metavar="KEY", help="file for the secret key (hex; kept private)")
    keygen.set_defaults(fn=_cmd_keygen)
    signer = subparsers.add_parser("sign", help="sign a .plan bundle (adds manifest.sig)")
    signer.add_argument("--model", required=True, help="the bundle to sign (rewritten in place)")
    signer.add_argument("--key", required=True, metavar="KEY", help="secret key file written by `pyposert keygen`")
    signer.set_defaults(fn=_cmd_sign)


def _cmd_keygen(args: argparse.Namespace) -> int:
    seed = generate_key()
    # Created 0600 and never overwritten: a secret key must not replace another by accident.
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")
    print(f"wrote the secret key to {args.out} (keep it private)")
    print(f"public key: {public_key(seed).hex()}  (give it to users: {TRUSTED_KEYS_ENV}=<public key>)")
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from .safety import open_regular

    with open_regular(args.key, "key file") as f:
        text = f.read(200).decode("ascii", "replace").strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise ValueError(f"{args.key} is not a key file written by `pyposert keygen` (64 hex digits)")
    seed = bytes.fromhex(text)
    sign_bundle(args.model, seed)
    print(f"signed {args.model} with public key {public_key(seed).hex()}")
    return 0

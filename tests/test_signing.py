"""Optional Ed25519 bundle signatures (pyposert.signing): RFC 8032's test vectors, and the
Engine refusing unsigned, tampered or foreign-signed bundles when keys are required."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pyposert import Engine, PlanError, signing
from pyposert.bundle import read_bundle, write_bundle
from pyposert.cli import main as cli
from stub_models import heatmap_max_onnx

H, W = 16, 12
MANIFEST = {"model": {"name": "stub", "version": "test", "config": {}},
            "input": {"height": H, "width": W, "keypoint_format": "coco18", "keypoint_order": "xy",
                      "image": "rgb", "normalisation": "[-1,1]",
                      "heatmap": {"mode": "gaussian", "sigma": 1.0, "radius": 4.0}}}

# RFC 8032, section 7.1, TEST 1 and TEST 2: (secret key, public key, message, signature).
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe2465"
     "5141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aee"
     "b00d291612bb0c00"),
]


@pytest.mark.parametrize("secret, public, message, signature", RFC8032)
def test_rfc8032_vectors(secret: str, public: str, message: str, signature: str) -> None:
    sk, pk, msg, sig = (bytes.fromhex(v) for v in (secret, public, message, signature))
    assert signing.public_key(sk) == pk
    assert signing.sign(sk, msg) == sig
    assert signing.verify(pk, msg, sig)
    assert not signing.verify(pk, msg + b"x", sig)
    assert not signing.verify(pk, msg, sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not signing.verify(pk, msg, sig[:32] + (int.from_bytes(sig[32:], "little") + signing._Q).to_bytes(32, "little"))


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    onnx_path = heatmap_max_onnx(tmp_path / "stub.onnx", H, W)
    return write_bundle(tmp_path / "stub.plan", MANIFEST, {"model.onnx": ("onnx", onnx_path.read_bytes(), None)})


def test_signed_bundles(plan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    seed, other = signing.generate_key(), signing.generate_key()
    trusted = signing.public_key(seed).hex()
    with pytest.raises(PlanError, match="not signed"):
        Engine(plan, trusted_keys=[trusted])
    Engine(plan).close()  # no keys asked for: unsigned is fine

    signing.sign_bundle(plan, seed)
    assert read_bundle(plan, [trusted]).signed_by == bytes.fromhex(trusted)
    with Engine(plan, trusted_keys=trusted) as engine:
        assert engine.size == (H, W)
    Engine(plan).close()  # a signed bundle loads without keys too
    with pytest.raises(PlanError, match="not a trusted key"):
        Engine(plan, trusted_keys=[signing.public_key(other)])

    # Tampering: the manifest changed after signing (the hashes still check).
    with zipfile.ZipFile(plan) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    tampered = tmp_path / "tampered.plan"
    with zipfile.ZipFile(tampered, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data.replace(b'"sigma": 1.0', b'"sigma": 2.0') if name == "manifest.json" else data)
    Engine(tampered).close()  # still a valid bundle...
    with pytest.raises(PlanError, match="does not match the manifest"):
        Engine(tampered, trusted_keys=[trusted])  # ...but not the signed one

    # The environment variable: for every Engine and CLI of the process.
    monkeypatch.setenv(signing.TRUSTED_KEYS_ENV, f"{signing.public_key(other).hex()}, {trusted}")
    Engine(plan).close()
    with pytest.raises(PlanError, match="does not match"):
        Engine(tampered)
    assert cli(["info", "--model", str(tampered)]) == 1
    err = capsys.readouterr().err
    assert "does not match" in err and len(err.strip().splitlines()) == 1
    bare = tmp_path / "stub.onnx"
    with pytest.raises(PlanError, match="cannot be signed"):
        Engine(bare)
    monkeypatch.setenv(signing.TRUSTED_KEYS_ENV, "not-a-key")
    with pytest.raises(ValueError, match="POSERT_TRUSTED_KEYS"):
        Engine(plan)


def test_trusted_key_forms() -> None:
    pk = signing.public_key(bytes(32))
    assert signing.parse_trusted_keys(pk) == signing.parse_trusted_keys(pk.hex()) == frozenset({pk})
    for bad in ("", "abc", b"short", [123]):
        with pytest.raises(ValueError):
            signing.parse_trusted_keys(bad)  # type: ignore[arg-type]


def test_keygen_and_sign_commands(plan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "release.key"
    assert cli(["keygen", "--out", str(key)]) == 0
    public = capsys.readouterr().out.split("public key: ")[1].split()[0]
    assert (key.stat().st_mode & 0o777) == 0o600
    assert cli(["keygen", "--out", str(key)]) == 1  # never overwrites a key
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert cli(["sign", "--model", str(plan), "--key", str(key)]) == 0
    assert read_bundle(plan, public).signed_by == bytes.fromhex(public)
    (tmp_path / "bad.key").write_text("not a key")
    assert cli(["sign", "--model", str(plan), "--key", str(tmp_path / "bad.key")]) == 1
    assert "not a key file" in capsys.readouterr().err

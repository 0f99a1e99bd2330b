"""Install GraphiQL's files for the gateway from pinned npm packages (``make graphiql``).

Each package of ``assets.json`` is fetched once with ``npm pack`` into the cache
(``~/.cache/herald/npm``, or ``HERALD_NPM_CACHE``), its tarball checked against the
pinned sha512, and the listed files copied into ``static/`` (git-ignored). Runs in well
under a second when everything is in place; a tarball whose hash does not match is
deleted and the install fails.

    python gateway/graphiql/install.py [--dest DIR] [--cache DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "assets.json"


def cache_dir() -> Path:
    configured = os.environ.get("HERALD_NPM_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "herald" / "npm"


def integrity_of(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch(name: str, version: str, integrity: str, cache: Path) -> Path:
    """The package's tarball in the cache, fetched with ``npm pack`` when missing."""
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{name.replace('/', '-').lstrip('@')}-{version}.tgz"
    if not tarball.exists():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            subprocess.run(  # noqa: S603 - pinned names from assets.json
                ["npm", "pack", f"{name}@{version}", "--pack-destination", tmp, "--silent"],  # noqa: S607
                check=True,
                stdout=subprocess.DEVNULL,
            )
            [packed] = Path(tmp).glob("*.tgz")
            packed.rename(tarball)
    actual = integrity_of(tarball)
    if actual != integrity:
        tarball.unlink()
        raise SystemExit(f"{name}@{version}: sha512 mismatch (got {actual}, want {integrity})")
    return tarball


def install(dest: Path, cache: Path) -> list[Path]:
    manifest = json.loads(MANIFEST.read_text())
    stamp = dest / ".installed"
    wanted = json.dumps(manifest["packages"], sort_keys=True)
    if stamp.exists() and stamp.read_text() == wanted:
        return sorted(p for p in dest.iterdir() if p.name != ".installed")
    tmp_dest = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp_dest, ignore_errors=True)
    tmp_dest.mkdir(parents=True)
    for package in manifest["packages"]:
        tarball = fetch(package["name"], package["version"], package["integrity"], cache)
        with tarfile.open(tarball) as archive:
            for member, target in package["files"].items():
                source = archive.extractfile(member)
                if source is None:
                    raise SystemExit(f"{package['name']}: no file {member} in the package")
                (tmp_dest / target).write_bytes(source.read())
    (tmp_dest / ".installed").write_text(wanted)
    shutil.rmtree(dest, ignore_errors=True)
    tmp_dest.rename(dest)
    return sorted(p for p in dest.iterdir() if p.name != ".installed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dest", type=Path, default=HERE / "static")
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)
    files = install(args.dest, args.cache or cache_dir())
    print(f"graphiql: {len(files)} files in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

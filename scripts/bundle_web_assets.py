#!/usr/bin/env python3
"""Bundle the web COP's third-party assets into ``src/siap/service/static/vendor/``.

The COP must work with no internet, so nothing is loaded from a CDN: this script fetches the
npm packages below with ``npm pack`` (the ordinary npm client, into a temporary folder),
unpacks them, copies the distribution files the COP uses and writes ``VENDOR.json`` and
``VENDOR.md`` beside them (package, version, licence, tarball integrity, files). Run it again
to update; commit the result (the files are package data of ``siap``).

    python scripts/bundle_web_assets.py            # the pinned versions below
    python scripts/bundle_web_assets.py --latest   # newest versions (then review and pin)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "src" / "siap" / "service" / "static" / "vendor"

# maplibre-gl stays on 5.x: 6.x ships only ES modules with a separate worker file.
# package -> (pinned version, [(file inside the package, name in vendor/)], licence file)
PACKAGES: dict[str, tuple[str, list[tuple[str, str]], str]] = {
    "maplibre-gl": (
        "5.24.1",
        [("dist/maplibre-gl.js", "maplibre-gl.js"), ("dist/maplibre-gl.css", "maplibre-gl.css")],
        "LICENSE.txt",
    ),
    "milsymbol": ("3.0.4", [("dist/milsymbol.js", "milsymbol.js")], "LICENSE"),
    "topojson-client": ("3.1.0", [("dist/topojson-client.min.js", "topojson-client.min.js")], "LICENSE"),
    "world-atlas": (
        "2.0.2",
        [
            ("countries-50m.json", "world-atlas/countries-50m.json"),
            ("countries-110m.json", "world-atlas/countries-110m.json"),
            ("land-50m.json", "world-atlas/land-50m.json"),
            ("land-110m.json", "world-atlas/land-110m.json"),
        ],
        "LICENSE",
    ),
}


def _npm(*args: str, cwd: Path) -> str:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("bundle_web_assets: npm not found on PATH (install Node.js)")
    done = subprocess.run([npm, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bundle_web_assets: npm {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latest", action="store_true", help="take the newest published versions")
    args = ap.parse_args()
    VENDOR.mkdir(parents=True, exist_ok=True)
    manifest = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, (version, files, licence) in PACKAGES.items():
            spec = name if args.latest else f"{name}@{version}"
            info = json.loads(_npm("pack", spec, "--json", cwd=tmp))[0]
            tarball = tmp / info["filename"]
            unpacked = tmp / name
            with tarfile.open(tarball) as tar:
                tar.extractall(unpacked, filter="data")
            pkg = unpacked / "package"
            meta = json.loads((pkg / "package.json").read_text(encoding="utf-8"))
            copied = []
            for src, dst in files:
                target = VENDOR / dst
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(pkg / src, target)
                copied.append(
                    {"file": dst, "from": src, "bytes": target.stat().st_size,
                     "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}
                )
            lic_dst = VENDOR / "licenses" / f"{name}.LICENSE.txt"
            lic_dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pkg / licence, lic_dst)
            manifest.append(
                {
                    "package": name,
                    "version": meta["version"],
                    "license": meta.get("license"),
                    "license_file": f"licenses/{name}.LICENSE.txt",
                    "homepage": meta.get("homepage"),
                    "integrity": info.get("integrity"),
                    "files": copied,
                }
            )
            print(f"{name}@{meta['version']} ({meta.get('license')}): {len(copied)} files")
    (VENDOR / "VENDOR.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Bundled third-party web assets",
        "",
        "Written by `scripts/bundle_web_assets.py` (do not edit by hand). Fetched with `npm pack`",
        "from the npm registry; served by `siap serve` under `/static/vendor/` so the COP needs no",
        "internet. Natural Earth data (via world-atlas) is in the public domain.",
        "",
        "| package | version | licence | files |",
        "|---|---|---|---|",
    ]
    for m in manifest:
        lines.append(
            f"| {m['package']} | {m['version']} | {m['license']} ([text]({m['license_file']})) | "
            + ", ".join(f"`{f['file']}`" for f in m["files"]) + " |"
        )
    (VENDOR / "VENDOR.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

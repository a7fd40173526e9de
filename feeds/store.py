"""Saved payloads: every fetch kept byte for byte under <root>/<source>/<as_of>/ with a manifest.json
(URL without secrets, sha256 and size per file, retrieval time, licence, citation, as_of).

A snapshot directory is written under a temporary name and renamed into place, so a crash leaves no
half-written vintage. The same payload saved twice is one snapshot; a different payload claiming the same
as_of gets its own directory (<as_of>~<hash>)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from feeds.errors import FeedError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Snapshot:
    source: str
    directory: Path
    as_of: dt.datetime
    retrieved_at: dt.datetime
    url: str
    licence: str
    citation: str
    files: tuple[tuple[str, str, int], ...]  # (name, sha256, bytes)

    @property
    def vintage(self) -> str:
        return self.directory.name

    @property
    def sha256(self) -> str:
        """One digest of the whole payload: the data version of the snapshot."""
        return combined_sha256({name: sha for name, sha, _ in self.files})

    def read(self) -> dict[str, bytes]:
        """The payload's files, checked against the manifest (a file changed after saving is an error)."""
        out = {}
        for name, sha, _ in self.files:
            body = (self.directory / name).read_bytes()
            if hashlib.sha256(body).hexdigest() != sha:
                raise FeedError(self.source, f"saved payload {self.directory / name} no longer matches the sha256 "
                                f"of its manifest (changed after it was saved); restore it or delete the snapshot")
            out[name] = body
        return out


def combined_sha256(shas: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{n}:{s}\n" for n, s in sorted(shas.items())).encode()).hexdigest()


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")


def _load(source: str, directory: Path) -> Snapshot:
    try:
        meta = json.loads((directory / MANIFEST).read_text())
        return Snapshot(source=source, directory=directory, as_of=dt.datetime.fromisoformat(meta["as_of"]),
                        retrieved_at=dt.datetime.fromisoformat(meta["retrieved_at"]), url=meta["url"],
                        licence=meta["licence"], citation=meta.get("citation", ""),
                        files=tuple((f["name"], f["sha256"], int(f["bytes"])) for f in meta["files"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FeedError(source, f"snapshot {directory} has no readable {MANIFEST} ({exc})") from None


def snapshots(root: Path, source: str) -> list[Snapshot]:
    """Every saved snapshot of `source`, oldest first (by as_of, then retrieval time)."""
    base = Path(root) / source
    if not base.is_dir():
        return []
    found = [_load(source, d) for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")]
    return sorted(found, key=lambda s: (s.as_of, s.retrieved_at, s.vintage))


def save(root: Path, source: str, files: dict[str, bytes], *, as_of: dt.datetime, url: str, licence: str,
         citation: str, retrieved_at: dt.datetime) -> tuple[Snapshot, bool]:
    """Keep `files` as a snapshot. Returns (snapshot, created): created is False when the same payload is
    already saved."""
    base = Path(root) / source
    shas = {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}
    digest = combined_sha256(shas)
    for existing in snapshots(root, source):
        if existing.sha256 == digest:
            return existing, False
    name = _stamp(as_of)
    if (base / name).exists():
        name = f"{name}~{digest[:8]}"
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for file_name, body in files.items():
            with open(tmp / file_name, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
        manifest = {"source": source, "as_of": as_of.astimezone(dt.timezone.utc).isoformat(),
                    "retrieved_at": retrieved_at.astimezone(dt.timezone.utc).isoformat(), "url": url,
                    "licence": licence, "citation": citation, "sha256": digest,
                    "files": [{"name": n, "sha256": shas[n], "bytes": len(files[n])} for n in files]}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, base / name)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FeedError(source, f"cannot save the snapshot under {base}: {exc.strerror or exc}; nothing stored") from None
    return _load(source, base / name), True

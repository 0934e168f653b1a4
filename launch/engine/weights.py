"""Find published weights: a local path, an http(s) URL, or a hub reference, downloaded once.

``model.checkpoint`` (and :func:`fetch`) accepts:

- a local path;
- ``http://...`` / ``https://...``, including Google Drive share links
  (``https://drive.google.com/file/d/<id>/view?...``); ``#sha256=<hex>`` at the end of a URL
  asks for that hash to be checked;
- ``hf-hub:<org>/<repo>[@<revision>][/<filename>]``: a file of a Hugging Face hub repository, or,
  without a filename, the repository's snapshot directory (through ``huggingface_hub``);
- ``timm:<model>.<tag>``: the weights timm's pretrained config of that name points at (its
  ``hf_hub_id`` file, else its URL);
- ``torchvision:<WeightsEnum>.<MEMBER>``, e.g. ``torchvision:ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1``.

Downloads go into one cache, ``$TOME_CACHE`` (default ``~/.cache/tome``): URLs under
``<cache>/<host>/<path>``, the hub under ``<cache>/hf``. A download runs under a file lock, so
on one node one process downloads while every other (DDP rank) waits for it; it is written to a
temporary file that is renamed into place only when complete and its hash checked where the
publisher gives one (torchvision's file-name hash prefix, the hub's sha256 etag, ``#sha256=``).
Once in the cache, a source resolves without the network. Failures are one-line
:class:`ConfigError` messages naming the URL and what to do, and leave no partial file.

Command line (prefetch on a login node before submitting to compute nodes without internet): ``launch/weights.py``::

    python -m launch.weights SOURCE|CONFIG.yaml [...]   # prints each local path on its own line
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import html
import http.client
import os
import re
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

from .errors import ConfigError

HUB_SCHEMES = ("hf-hub:", "timm:", "torchvision:")
URL_SCHEMES = ("http://", "https://")
# Where Google Drive serves the bytes of a shared file (a module attribute, so tests can point
# it at a local server).
DRIVE_DOWNLOAD = "https://drive.usercontent.google.com/download"
_DRIVE_ID = re.compile(r"(?:/file/d/|[?&]id=)([A-Za-z0-9_-]{10,})")
_HASH_PREFIX = re.compile(r"-([a-f0-9]{6,})\.")  # torchvision / torch.hub file-name convention
SPELLINGS = ("a local path, http(s)://..., hf-hub:<org>/<repo>[@rev][/<file>], timm:<model>.<tag> "
              "or torchvision:<WeightsEnum>.<MEMBER>")
_CHUNK = 1 << 20
TIMEOUT_S = 60


def cache_dir() -> Path:
    root = os.environ.get("TOME_CACHE")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tome"


def is_remote(source) -> bool:
    return isinstance(source, str) and source.startswith(URL_SCHEMES + HUB_SCHEMES)


def _hint_offline(url: str) -> str:
    return (f"run `python -m launch.weights {url}` where there is internet (e.g. the login node) "
            f"with the same TOME_CACHE, or pass a local path")


# -- locking and atomic writes -----------------------------------------------------------------

@contextlib.contextmanager
def _node_lock(name: str):
    """An exclusive lock shared by every process of this node (and of nodes sharing the cache)."""
    locks = cache_dir() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / (hashlib.sha256(name.encode()).hexdigest()[:32] + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _progress(total: Optional[int], name: str):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with huggingface_hub
        return contextlib.nullcontext(None)
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                file=sys.stderr, disable=not sys.stderr.isatty() and os.environ.get("TOME_PROGRESS") != "1")


# -- plain URLs (and Google Drive) -------------------------------------------------------------

def _split_hash(url: str) -> tuple[str, Optional[str]]:
    base, _, fragment = url.partition("#")
    match = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", fragment)
    if fragment and not match:
        raise ConfigError(f"URL fragment #{fragment} of {base} is not valid; expected #sha256=<64 hex digits>")
    return base, match.group(1).lower() if match else None


def _drive_id(url: str) -> Optional[str]:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("drive.google.com", "docs.google.com", "drive.usercontent.google.com"):
        return None
    match = _DRIVE_ID.search(parts.path + "?" + parts.query)
    return match.group(1) if match else None


def _url_dest(url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.replace(":", "_")
    path = [p for p in parts.path.split("/") if p not in ("", ".", "..")] or ["index"]
    dest = cache_dir().joinpath(host, *path)
    if parts.query:
        dest = dest.parent / hashlib.sha256(parts.query.encode()).hexdigest()[:12] / dest.name
    return dest


def _open(url: str, shown: Optional[str] = None):
    """An open response for url; errors name ``shown`` (the user's spelling), default url."""
    shown = shown or url
    request = urllib.request.Request(url, headers={"User-Agent": "tome-weights/1"})
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        what = "check the URL" if err.code in (403, 404, 410) else "try again later"
        raise ConfigError(f"cannot download {shown}: HTTP {err.code} {err.reason}; {what}, or "
                          f"download the file yourself and pass its local path") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ConfigError(f"cannot reach {shown} ({reason}); {_hint_offline(shown)}") from None


def _drive_confirm(page: bytes, url: str) -> str:
    """The download URL behind Google Drive's "can't scan this file for viruses" page."""
    text = page.decode("utf-8", "replace")
    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"', text)
    fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', text))
    if not form or "id" not in fields:
        raise ConfigError(f"Google Drive returned a web page, not the file, for {url} (quota exceeded "
                          f"or not shared publicly); open the link in a browser, download the file "
                          f"and pass its local path")
    return html.unescape(form.group(1)) + "?" + urllib.parse.urlencode(fields)


def _filename(response, fallback: str) -> str:
    disposition = response.headers.get("Content-Disposition") or ""
    match = re.search(r"filename\*=UTF-8''([^;]+)|filename=\"?([^\";]+)\"?", disposition)
    name = urllib.parse.unquote(match.group(1) or match.group(2)) if match else fallback
    name = os.path.basename(name.strip())
    return name if name and not name.startswith(".") else fallback


def _download(url: str, response, dest: Path, sha256: Optional[str], hash_prefix: Optional[str]) -> Path:
    """Stream one open response into dest, atomically; check size and hash."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"downloading {url} -> {dest}", file=sys.stderr, flush=True)
    tmp = dest.parent / f".{dest.name}.part.{os.getpid()}"
    total = response.headers.get("Content-Length")
    total = int(total) if total and total.isdigit() else None
    digest, written = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as f, _progress(total, dest.name) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except http.client.IncompleteRead as err:
                    chunk = err.partial
                    f.write(chunk)
                    written += len(chunk)
                    break
                except (socket.timeout, ConnectionError, OSError) as err:
                    raise ConfigError(f"download of {url} failed after {written} bytes ({err}); "
                                      f"run again to retry, or {_hint_offline(url)}") from None
                if not chunk:
                    break
                f.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        if total is not None and written != total:
            raise ConfigError(f"download of {url} was cut off after {written} of {total} bytes; "
                              f"run again to retry, or {_hint_offline(url)}")
        got = digest.hexdigest()
        if sha256 and got != sha256:
            raise ConfigError(f"{url} has sha256 {got}, not the published {sha256}: the download is "
                              f"corrupt or the file changed; run again, or check the source")
        if hash_prefix and not got.startswith(hash_prefix):
            raise ConfigError(f"{url} has sha256 {got[:len(hash_prefix)]}..., not the {hash_prefix} its "
                              f"name promises: the download is corrupt; run again")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest


def _cached_url(url: str) -> Optional[Path]:
    base, _ = _split_hash(url)
    drive = _drive_id(base)
    if drive:
        folder = cache_dir() / "drive.google.com" / drive
        files = sorted(p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")) \
            if folder.is_dir() else []
        return files[0] if files else None
    dest = _url_dest(base)
    return dest if dest.is_file() else None


def fetch_url(url: str, hash_prefix: Optional[str] = None) -> Path:
    base, sha256 = _split_hash(url)
    hit = _cached_url(url)
    if hit:
        return hit
    with _node_lock(base):
        hit = _cached_url(url)  # another process may have finished while we waited
        if hit:
            return hit
        drive = _drive_id(base)
        if not drive:
            with contextlib.closing(_open(base)) as response:
                return _download(base, response, _url_dest(base), sha256, hash_prefix)
        link = f"{DRIVE_DOWNLOAD}?{urllib.parse.urlencode({'id': drive, 'export': 'download'})}"
        for _ in range(2):  # the file, or Drive's confirmation page for large files, then the file
            with contextlib.closing(_open(link, shown=base)) as response:
                if not (response.headers.get("Content-Type") or "").startswith("text/html"):
                    dest = cache_dir() / "drive.google.com" / drive / _filename(response, drive)
                    return _download(base, response, dest, sha256, hash_prefix)
                link = _drive_confirm(response.read(1 << 22), base)
        raise ConfigError(f"Google Drive kept asking for confirmation for {base}; open the link in a "
                          f"browser, download the file and pass its local path")


# -- hubs ----------------------------------------------------------------------------------------

def parse_hf(source: str) -> tuple[str, Optional[str], Optional[str]]:
    """``hf-hub:org/repo[@rev][/filename]`` -> (repo_id, revision, filename or None)."""
    body = source[len("hf-hub:"):]
    parts = body.split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ConfigError(f"{source!r} is not a hub reference; expected hf-hub:<org>/<repo>[@rev][/<file>]")
    repo, _, revision = parts[1].partition("@")
    filename = "/".join(parts[2:]) or None
    return f"{parts[0]}/{repo}", revision or None, filename


def _hf_error(source: str, err: Exception) -> ConfigError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    out = ConfigError(f"cannot fetch {source} from the Hugging Face hub ({type(err).__name__}: "
                      f"{first[:200]}); check the name, or {_hint_offline(source)}")
    # the hub answered that the repository has no such file (not: the hub could not be reached)
    from huggingface_hub import errors as hub_errors
    local = getattr(hub_errors, "LocalEntryNotFoundError", ())
    out.no_such_file = isinstance(err, getattr(hub_errors, "EntryNotFoundError", ())) and not isinstance(err, local)
    return out


def _verify_hf_blob(path: str, source: str) -> None:
    # Large (LFS) files are stored as blobs/<sha256 of the content>: the hub's own etag.
    blob = os.path.realpath(path)
    name = os.path.basename(blob)
    if re.fullmatch(r"[0-9a-f]{64}", name) and _sha256(Path(blob)) != name:
        for p in (path, blob):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        raise ConfigError(f"{source}: the downloaded file does not match the hub's sha256 {name}; "
                          f"run again to download it afresh")


def fetch_hf(source: str) -> Path:
    import huggingface_hub as hub

    repo, revision, filename = parse_hf(source)
    cache = str(cache_dir() / "hf")
    if filename is None:
        with contextlib.suppress(Exception):
            return Path(hub.snapshot_download(repo, revision=revision, cache_dir=cache, local_files_only=True))
        with _node_lock(source):
            try:
                snapshot = hub.snapshot_download(repo, revision=revision, cache_dir=cache)
            except Exception as err:  # the hub's errors have many types
                raise _hf_error(source, err) from None
            for root, _, names in os.walk(snapshot):  # each large file against the hub's sha256
                for name in names:
                    path = os.path.join(root, name)
                    _verify_hf_blob(path, f"{source}/{os.path.relpath(path, snapshot)}")
            return Path(snapshot)
    hit = hub.try_to_load_from_cache(repo, filename, cache_dir=cache, revision=revision)
    if isinstance(hit, str):
        return Path(hit)
    with _node_lock(source):
        hit = hub.try_to_load_from_cache(repo, filename, cache_dir=cache, revision=revision)
        if isinstance(hit, str):
            return Path(hit)
        try:
            path = hub.hf_hub_download(repo, filename, revision=revision, cache_dir=cache)
        except Exception as err:
            raise _hf_error(source, err) from None
        _verify_hf_blob(path, source)
        return Path(path)


def resolve_timm(source: str) -> str:
    """``timm:<model>.<tag>`` -> an hf-hub: or http(s) source, from timm's pretrained config."""
    from timm.models import get_pretrained_cfg

    name = source[len("timm:"):]
    cfg = get_pretrained_cfg(name) if "." in name else None
    if cfg is None:
        raise ConfigError(f"{source!r} names no timm pretrained config; expected timm:<model>.<tag> "
                          f"as listed by timm.list_pretrained(), e.g. timm:vit_base_patch16_224.augreg_in21k_ft_in1k")
    if cfg.hf_hub_id:
        return f"hf-hub:{cfg.hf_hub_id}/{cfg.hf_hub_filename or 'model.safetensors'}"
    if cfg.url:
        return cfg.url
    raise ConfigError(f"timm's pretrained config {name!r} names neither a hub repository nor a URL")


def resolve_torchvision(source: str) -> str:
    import torchvision.models as tvm

    name = source[len("torchvision:"):]
    enum_name, _, member = name.partition(".")
    enum = getattr(tvm, enum_name, None)
    if enum is None or not member or member not in getattr(enum, "__members__", {}):
        valid = list(enum.__members__) if enum is not None and hasattr(enum, "__members__") else []
        raise ConfigError(f"{source!r} is not a torchvision weights enum member; expected "
                          f"torchvision:<WeightsEnum>.<MEMBER>, e.g. torchvision:ViT_B_16_Weights."
                          f"IMAGENET1K_SWAG_E2E_V1" + (f" (members: {valid})" if valid else ""))
    return enum[member].url


def _torchvision_prefix(url: str) -> Optional[str]:
    match = _HASH_PREFIX.search(os.path.basename(urllib.parse.urlsplit(url).path))
    return match.group(1) if match else None


# -- the entry points ----------------------------------------------------------------------------

def fetch(source) -> str:
    """The local path of a checkpoint source (see the module docstring), downloading it if needed."""
    if not isinstance(source, (str, os.PathLike)) or not str(source):
        raise ConfigError(f"checkpoint source {source!r} is not valid; expected {SPELLINGS}")
    source = os.fspath(source)
    if source.startswith("timm:"):
        resolved = resolve_timm(source)
        if resolved.startswith("hf-hub:") and resolved.endswith("/model.safetensors"):
            try:
                return str(fetch_hf(resolved))
            except ConfigError as err:  # older hub repositories hold pytorch_model.bin only
                if not getattr(err, "no_such_file", False):
                    raise
                return str(fetch_hf(resolved[:-len("model.safetensors")] + "pytorch_model.bin"))
        return fetch(resolved)
    if source.startswith("torchvision:"):
        url = resolve_torchvision(source)
        return str(fetch_url(url, hash_prefix=_torchvision_prefix(url)))
    if source.startswith("hf-hub:"):
        return str(fetch_hf(source))
    if source.startswith(URL_SCHEMES):
        return str(fetch_url(source))
    if not os.path.exists(source):
        raise ConfigError(f"checkpoint {source!r} does not exist; expected {SPELLINGS}")
    return source


def cached(source) -> Optional[str]:
    """The local path of a source if it needs no download (a local file, or already cached)."""
    source = os.fspath(source)
    if not is_remote(source):
        return source if os.path.exists(source) else None
    try:
        if source.startswith("timm:"):
            source = resolve_timm(source)
        elif source.startswith("torchvision:"):
            source = resolve_torchvision(source)
        if source.startswith(URL_SCHEMES):
            hit = _cached_url(source)
            return str(hit) if hit else None
        import huggingface_hub as hub
        repo, revision, filename = parse_hf(source)
        cache = str(cache_dir() / "hf")
        if filename is None:
            return hub.snapshot_download(repo, revision=revision, cache_dir=cache, local_files_only=True)
        hit = hub.try_to_load_from_cache(repo, filename, cache_dir=cache, revision=revision)
        return hit if isinstance(hit, str) else None
    except Exception:  # not cached, or not resolvable offline
        return None


# For code that writes derived files into the cache itself (converters of published weights).
node_lock = _node_lock
file_sha256 = _sha256

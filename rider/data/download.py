"""The ``cmu`` source: the standard CMU-MOSI / CMU-MOSEI .csd files, at the URLs the SDK ships.

The SDK's own downloader gives up on the first error and leaves partial files behind; the CMU server is often
down. Here each file is fetched with retries and exponential backoff into a temporary file, renamed only when
complete (and readable as a computational sequence), and a server that stays down is reported with the URL.
A ``base_url`` replaces the SDK's host so that a mirror can serve the same paths.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from rider.atomic import atomic_path
from rider.data.csd import ROLES, DataError, read_sequence

log = logging.getLogger(__name__)

SDK_HOST = "http://immortal.multicomp.cs.cmu.edu"
# role -> (SDK module, dictionary, key) per dataset: the URLs themselves live in the SDK.
_SDK_ENTRIES = {
    "mosi": {"words": ("raw", "words"), "audio": ("highlevel", "COVAREP"), "vision": ("highlevel", "FACET 4.1"),
             "labels": ("labels", "Opinion Segment Labels")},
    "mosei": {"words": ("raw", "words"), "audio": ("highlevel", "COVAREP"), "vision": ("highlevel", "FACET 4.2"),
              "labels": ("labels", "Sentiment Labels")},
}


@dataclass(frozen=True)
class DownloadConfig:
    dataset: str = "mosi"        # mosi | mosei
    base_url: str = SDK_HOST     # a mirror serving the SDK's paths
    retries: int = 5
    backoff_s: float = 2.0       # first wait; doubles after each failure
    timeout_s: float = 60.0      # per connection attempt / read


class DownloadError(RuntimeError):
    """A file could not be fetched; the message names the URL."""


def sdk_urls(config: DownloadConfig) -> dict[str, str]:
    """URLs of the words, audio, vision and labels sequences, with the host replaced by ``base_url``."""
    from mmsdk.mmdatasdk.dataset import standard_datasets

    module = {"mosi": standard_datasets.CMU_MOSI, "mosei": standard_datasets.CMU_MOSEI}[config.dataset]
    urls = {}
    for role, (table, key) in _SDK_ENTRIES[config.dataset].items():
        url = getattr(module, table)[key]
        urls[role] = config.base_url.rstrip("/") + url[len(SDK_HOST):]
    return urls


def fetch(url: str, destination: Path, role: str, config: DownloadConfig) -> None:
    """Download ``url`` to ``destination`` atomically, retrying with backoff; raise DownloadError naming the URL.

    The file is renamed into place only once it reads as a valid ``role`` sequence.
    """
    import requests
    from tqdm import tqdm

    wait = config.backoff_s
    for attempt in range(1, config.retries + 1):
        try:
            with atomic_path(destination, suffix=".csd") as tmp:
                with requests.get(url, stream=True, timeout=config.timeout_s) as response:
                    response.raise_for_status()
                    total = int(response.headers.get("content-length", 0))
                    received = 0
                    with open(tmp, "wb") as handle, tqdm(total=total or None, unit="B", unit_scale=True,
                                                         desc=destination.name) as bar:
                        for block in response.iter_content(1 << 20):
                            handle.write(block)
                            received += len(block)
                            bar.update(len(block))
                    if total and received != total:
                        raise DownloadError(f"{url}: received {received} of {total} bytes")
                read_sequence(tmp, ROLES[role])
            return
        except (requests.RequestException, DownloadError, DataError) as err:
            if attempt == config.retries:
                raise DownloadError(f"{url}: download failed after {attempt} attempt(s): {err}") from None
            log.warning("%s: attempt %d failed (%s); retrying in %.0f s", url, attempt, err, wait)
            time.sleep(wait)
            wait *= 2


def download(config: DownloadConfig, out_dir: str | os.PathLike, filenames: dict[str, str]) -> dict[str, Path]:
    """Fetch every role's sequence into ``out_dir``; files already there (complete, since writes are atomic) stay."""
    out_dir = Path(out_dir)
    paths = {}
    for role, url in sdk_urls(config).items():
        path = out_dir / filenames[role]
        if path.exists():
            log.info("%s: already there, not downloaded again", path)
        else:
            log.info("downloading %s -> %s", url, path)
            fetch(url, path, role, config)
        paths[role] = path
    return paths

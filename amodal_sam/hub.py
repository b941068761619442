"""Finding checkpoint files in a local folder or on the Hugging Face Hub, and uploading them.

Before asking the Hub for a file, the Hub's address is tried once per process (a TCP connection,
a few seconds at most): when it cannot be reached, a file already in the local Hub cache is used,
and otherwise a :class:`HubUnreachableError` says so at once, instead of the minute of retries
huggingface_hub would spend. ``HF_HUB_OFFLINE=1`` or ``local_files_only=True`` read the cache only.
"""

from __future__ import annotations

import functools
import socket
import tempfile
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

# Where a Hub repo of transformers' SamModel keeps its weights, in order of preference.
SAM_HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")
HUB_PROBE_TIMEOUT_S = 3.0
_OFFLINE_HINT = (
    "offline, pass a local folder (--model DIR, AmodalSAM.from_pretrained('DIR')) or a local SAM file, "
    "or set HF_HUB_OFFLINE=1 to read the Hub cache only"
)


class HubUnreachableError(OSError):
    """A file that is not in the local Hub cache was asked for while the Hub cannot be reached."""


class MissingHubFileError(FileNotFoundError):
    """The Hub repo (or local folder) answered: it has no such file."""


@functools.lru_cache(maxsize=8)
def hub_unreachable_reason(endpoint: str) -> str | None:
    """Why the Hub at ``endpoint`` (a URL) cannot be reached, or None when a TCP connection to it
    opens within :data:`HUB_PROBE_TIMEOUT_S`. Asked once per endpoint and process."""
    address = urlparse(endpoint)
    port = address.port or (443 if address.scheme == "https" else 80)
    try:
        socket.create_connection((address.hostname, port), timeout=HUB_PROBE_TIMEOUT_S).close()
    except OSError as error:
        return f"{address.hostname}:{port}: {error.strerror or error}"
    return None


def resolve_file(
    model_id_or_dir: str,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
    token: str | None = None,
) -> Path:
    """Path of ``filename`` in a local folder, or in a Hub repo (downloaded or from the cache).

    ``local_files_only=True`` (or ``HF_HUB_OFFLINE=1``) reads the Hub cache only. Errors:
    :class:`MissingHubFileError` when the folder or repo has no such file,
    :class:`HubUnreachableError` when it is not cached and the Hub cannot be reached, else a
    FileNotFoundError / OSError that keeps the Hub's own error as its cause.
    """
    folder = Path(model_id_or_dir)
    if folder.is_dir():
        path = folder / filename
        if not path.is_file():
            raise MissingHubFileError(f"{str(path)!r} does not exist in the checkpoint folder {str(folder)!r}")
        return path
    where = f"{filename!r} of Hub repo {model_id_or_dir!r}"
    offline = local_files_only or constants.HF_HUB_OFFLINE
    reason = None if offline else hub_unreachable_reason(constants.ENDPOINT)
    download = functools.partial(
        hf_hub_download,
        repo_id=model_id_or_dir,
        filename=filename,
        revision=revision,
        cache_dir=cache_dir,
        token=token,
    )
    try:
        return Path(download(local_files_only=offline or reason is not None))
    except HFValidationError as error:
        raise FileNotFoundError(
            f"{model_id_or_dir!r} is neither a local folder nor a valid Hub repo id ({error})"
        ) from error
    except LocalEntryNotFoundError as error:
        if reason is not None:
            raise HubUnreachableError(
                f"{where} is not in the local Hub cache, and the Hub ({constants.ENDPOINT}) cannot be reached "
                f"({reason}); {_OFFLINE_HINT}"
            ) from error
        if offline:
            raise FileNotFoundError(
                f"{where} is not in the local Hub cache, and downloading is off (local_files_only=True or "
                f"HF_HUB_OFFLINE=1): download it once online, or pass a local folder"
            ) from error
        raise OSError(f"{where} could not be downloaded: {error}") from error
    except RepositoryNotFoundError as error:
        raise FileNotFoundError(
            f"Hub repo {model_id_or_dir!r} does not exist, or is private or gated (pass token=): {error}"
        ) from error
    except RevisionNotFoundError as error:
        raise FileNotFoundError(f"Hub repo {model_id_or_dir!r} has no revision {revision!r}") from error
    except EntryNotFoundError as error:
        raise MissingHubFileError(f"Hub repo {model_id_or_dir!r} has no file {filename!r}") from error


SAM_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")  # a source with one names a file, not a Hub id


def resolve_sam_checkpoint(
    source: str,
    *,
    model_dir: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
    token: str | None = None,
) -> Path:
    """Path of a SAM checkpoint named by ``source``.

    ``source`` is, in the order tried: a file name inside ``model_dir`` (an amodal checkpoint
    folder or Hub repo that ships its SAM), a local file, or a Hub id of a transformers-layout
    SAM such as ``facebook/sam-vit-base``, whose weights are looked for under each of
    :data:`SAM_HUB_FILENAMES` in turn (offline: in the cache); when none is found the first
    failure is raised as it is (not cached, unreachable), or that the repo has none of them.
    A relative path (``../sam_vit_b.pth``) in a local model folder's config is relative to that
    folder, wherever the program runs from.
    """
    if model_dir is not None and "/" not in source:
        return resolve_file(
            model_dir, source, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )
    if model_dir is not None and Path(model_dir).is_dir() and not Path(source).is_absolute():
        beside = Path(model_dir) / source
        if beside.is_file():
            return beside
        if Path(source).suffix in SAM_FILE_SUFFIXES:
            raise FileNotFoundError(f"SAM checkpoint {source!r} does not exist relative to the model folder ({beside})")
    if Path(source).is_file():
        return Path(source)
    if Path(source).suffix in SAM_FILE_SUFFIXES:
        raise FileNotFoundError(f"SAM checkpoint {source!r} does not exist")
    first_failure = None
    for filename in SAM_HUB_FILENAMES:
        try:
            return resolve_file(source, filename, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
        except MissingHubFileError:
            continue
        except OSError as error:  # e.g. not in the cache while offline: the next name may be
            first_failure = first_failure or error
    if first_failure is not None:
        raise first_failure
    raise FileNotFoundError(f"SAM weights {source!r}: the Hub repo has neither {' nor '.join(SAM_HUB_FILENAMES)}")


def upload_to_hub(
    save: Callable[[Path], None],
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload amodal_sam model",
):
    """Create ``repo_id`` if needed and upload what ``save(folder)`` writes, in one commit."""
    api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, private=private, repo_type="model", exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        save(Path(folder))
        return api.upload_folder(
            repo_id=repo_id, folder_path=folder, revision=revision, commit_message=commit_message, repo_type="model"
        )

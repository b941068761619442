"""Finding checkpoint files in a local folder or on the Hugging Face Hub, and uploading them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError

# Where a Hub repo of transformers' SamModel keeps its weights, in order of preference.
SAM_HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")


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

    ``local_files_only=True`` (or ``HF_HUB_OFFLINE=1``) reads the Hub cache only.
    """
    folder = Path(model_id_or_dir)
    if folder.is_dir():
        path = folder / filename
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} does not exist in the checkpoint folder {str(folder)!r}")
        return path
    try:
        return Path(
            hf_hub_download(
                repo_id=model_id_or_dir,
                filename=filename,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
            )
        )
    except HFValidationError as error:
        raise FileNotFoundError(f"{model_id_or_dir!r} is neither a local folder nor a valid Hub repo id") from error
    except LocalEntryNotFoundError as error:
        raise FileNotFoundError(
            f"{filename!r} of Hub repo {model_id_or_dir!r} is not in the local cache, and downloading is "
            f"off (local_files_only=True or HF_HUB_OFFLINE=1) or failed"
        ) from error


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
    SAM such as ``facebook/sam-vit-base``.
    """
    if model_dir is not None and "/" not in source:
        return resolve_file(
            model_dir, source, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )
    if Path(source).is_file():
        return Path(source)
    if Path(source).suffix in (".pth", ".pt", ".bin", ".safetensors"):
        raise FileNotFoundError(f"SAM checkpoint {source!r} does not exist")
    for filename in SAM_HUB_FILENAMES:
        try:
            return resolve_file(source, filename, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
        except (EntryNotFoundError, FileNotFoundError):
            continue
    raise FileNotFoundError(
        f"SAM weights {source!r}: no local file, and no {' or '.join(SAM_HUB_FILENAMES)} found for it as a Hub repo"
    )


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

"""Embedding cache: reuse, keys, rejection of corrupt and foreign entries, atomic writes."""

import threading
import warnings

import numpy as np
import pytest
import torch

import amodal_sam.embedding_cache as cache_module
from amodal_sam import AmodalSAM
from amodal_sam.cli import main
from amodal_sam.embedding_cache import EmbeddingCache, encoder_identity, image_key

from conftest import TEST_DEVICE, random_image, write_occlusion_dataset


def test_second_run_computes_nothing(tiny_model, tmp_path):
    images = [random_image(50, 70, seed) for seed in range(3)]
    first = EmbeddingCache(tmp_path, tiny_model)
    embeddings = [first.embedding(image) for image in images]
    assert (first.stats.computed, first.stats.hits) == (3, 0)
    second = EmbeddingCache(tmp_path, tiny_model)
    again = [second.embedding(image) for image in images]
    assert (second.stats.computed, second.stats.hits) == (0, 3)
    for a, b in zip(embeddings, again):
        assert torch.equal(a, b)


def test_cached_embedding_equals_a_fresh_encoding(tiny_model, tmp_path):
    from amodal_sam import AmodalPredictor

    image = random_image(50, 70)
    predictor = AmodalPredictor(tiny_model, device=TEST_DEVICE)
    predictor.set_image(image)
    torch.testing.assert_close(EmbeddingCache(tmp_path, tiny_model).embedding(image), predictor.image.embedding)


def test_keys_follow_content_and_encoder(tiny_model):
    image = random_image(20, 30)
    assert image_key(image) == image_key(image.copy())
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    assert image_key(changed) != image_key(image)
    assert encoder_identity(tiny_model) == encoder_identity(AmodalSAM.random("tiny", seed=0))
    assert encoder_identity(tiny_model) != encoder_identity(AmodalSAM.random("tiny", seed=1))


def test_the_encoder_identity_covers_the_pixel_statistics():
    """Same weights, other normalisation (pixel_mean / pixel_std): other embeddings, another key."""
    import dataclasses

    from amodal_sam.config import SAM_SPECS

    spec = SAM_SPECS["tiny"]
    model = AmodalSAM.random(spec, seed=0)
    base = encoder_identity(model)
    for change in ({"pixel_mean": (0.0, 0.0, 0.0)}, {"pixel_std": (1.0, 1.0, 1.0)}):
        other = AmodalSAM.random(dataclasses.replace(spec, **change), seed=0)
        weights, other_weights = model.sam.image_encoder.state_dict(), other.sam.image_encoder.state_dict()
        assert all(torch.equal(weights[name], other_weights[name]) for name in weights)  # the weights alike
        assert encoder_identity(other) != base


def test_another_encoder_never_reads_these_entries(tiny_model, tmp_path):
    image = random_image(40, 40)
    EmbeddingCache(tmp_path, tiny_model).embedding(image)
    other = EmbeddingCache(tmp_path, AmodalSAM.random("tiny", seed=1))
    other.embedding(image)
    assert other.stats.computed == 1 and other.stats.hits == 0


def test_corrupt_and_foreign_entries_are_rejected_and_replaced(tiny_model, tmp_path):
    image = random_image(40, 40)
    cache = EmbeddingCache(tmp_path, tiny_model)
    expected = cache.embedding(image)
    path = cache.path(image_key(image))
    path.write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="rejected: unreadable"):
        torch.testing.assert_close(cache.embedding(image), expected)
    other = EmbeddingCache(tmp_path, AmodalSAM.random("tiny", seed=1))
    other.embedding(image)
    path.write_bytes(other.path(image_key(image)).read_bytes())  # another encoder's entry under this name
    with pytest.warns(UserWarning, match="written by encoder"):
        torch.testing.assert_close(cache.embedding(image), expected)
    assert cache.stats.rejected == 2 and cache.stats.computed == 3


def test_a_crash_while_writing_leaves_no_entry(tiny_model, tmp_path, monkeypatch):
    image = random_image(40, 40)
    cache = EmbeddingCache(tmp_path, tiny_model)

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.embedding(image)
    folder = cache.path(image_key(image)).parent
    assert not any(folder.iterdir())


def test_concurrent_writers_leave_a_whole_entry(tiny_model, tmp_path):
    image = random_image(40, 40)
    cache = EmbeddingCache(tmp_path, tiny_model)
    embedding = cache.embedding(image)
    key = image_key(image)
    errors = []

    def writer():
        try:
            for _ in range(20):
                cache.write(key, embedding)
                assert cache.read(key) is not None
        except Exception as error:  # noqa: BLE001 - collected for the main thread
            errors.append(error)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rejected (half-written) entry would warn
        threads = [threading.Thread(target=writer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    torch.testing.assert_close(cache.read(key), embedding)
    assert [p.name for p in cache.path(key).parent.iterdir()] == [f"{key}.safetensors"]


def test_embed_command_counts(tmp_path, capsys):
    annotations = write_occlusion_dataset(tmp_path / "data", count=3)
    arguments = ["embed", "--data", str(annotations), "--sam", "tiny", "--cache", str(tmp_path / "cache")]
    assert main(arguments) == 0
    assert "3 embedded, 0 already cached" in capsys.readouterr().out
    assert main(arguments) == 0
    assert "0 embedded, 3 already cached" in capsys.readouterr().out
    assert np.any([p.suffix == ".safetensors" for p in (tmp_path / "cache").rglob("*")])


def test_fast_encoder_entries_are_kept_apart(tiny_model, tmp_path):
    image = random_image(40, 40)
    reference = EmbeddingCache(tmp_path, tiny_model)
    reference.embedding(image)
    fast = EmbeddingCache(tmp_path, AmodalSAM.random("tiny", seed=0).accelerate_encoder(dtype="bf16"))
    assert "folded-bf16" in fast.encoder and fast.encoder != reference.encoder
    fast.embedding(image)
    assert fast.stats.computed == 1 and fast.stats.hits == 0


def test_an_entry_under_another_images_name_is_rejected(tiny_model, tmp_path):
    cache = EmbeddingCache(tmp_path, tiny_model)
    first, second = random_image(40, 40, seed=1), random_image(40, 40, seed=2)
    expected = cache.embedding(first)
    cache.embedding(second)
    # same encoder, valid file, but it belongs to the second image
    cache.path(image_key(first)).write_bytes(cache.path(image_key(second)).read_bytes())
    with pytest.warns(UserWarning, match="image hash does not match"):
        torch.testing.assert_close(cache.embedding(first), expected)
    assert cache.stats.rejected == 1


def test_an_entry_whose_data_changed_on_disk_is_rejected(tiny_model, tmp_path):
    image = random_image(40, 40)
    cache = EmbeddingCache(tmp_path, tiny_model)
    expected = cache.embedding(image)
    path = cache.path(image_key(image))
    content = bytearray(path.read_bytes())
    content[-4096:] = bytes(4096)  # zero the last 1024 floats of the tensor data; the header is intact
    path.write_bytes(bytes(content))
    with pytest.warns(UserWarning, match="does not match its stored digest"):
        torch.testing.assert_close(cache.embedding(image), expected)
    assert cache.stats.rejected == 1 and cache.stats.computed == 2


def test_a_non_finite_embedding_is_never_stored(tiny_model, tmp_path):
    cache = EmbeddingCache(tmp_path, tiny_model)
    broken = torch.zeros(cache.shape)
    broken[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite embedding"):
        cache.write("ab" * 32, broken)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_an_entry_lost_during_training_is_recomputed(tmp_path, monkeypatch):
    import amodal_sam.train as train_module
    from amodal_sam.data.readers import load_dataset
    from amodal_sam.train import TrainOptions, fit

    dataset = load_dataset(write_occlusion_dataset(tmp_path / "data", count=4))
    model = AmodalSAM.random("tiny", seed=0)
    embed = train_module.embed_dataset

    def embed_then_spoil(data, cache, **kwargs):
        keys = embed(data, cache, **kwargs)
        cache.path(keys[0]).write_bytes(b"gone bad after the embedding pass")
        return keys

    monkeypatch.setattr(train_module, "embed_dataset", embed_then_spoil)
    with pytest.warns(UserWarning, match="rejected: unreadable"):
        history = fit(
            model, dataset, tmp_path / "run", TrainOptions(epochs=1, batch_size=4, progress=False), device=TEST_DEVICE
        )
    assert len(history) == 1
    cache = EmbeddingCache(tmp_path / "run" / "embeddings", model)
    assert cache.read(cache_module.image_key(dataset.load_image(dataset.records[0]))) is not None  # rewritten


def test_an_image_too_thin_for_the_encoder_is_named(tiny_model, tmp_path):
    from amodal_sam.data.readers import AmodalDataset, ImageRecord
    from amodal_sam.image_io import write_rgb

    write_rgb(tmp_path / "thin.png", random_image(2, 3000))
    dataset = AmodalDataset([ImageRecord(image_id=1, image_path=tmp_path / "thin.png")], "folder")
    with pytest.raises(ValueError, match=r"thin.png': an image of 2 x 3000 \(H x W\) is too thin .* at most 512 x"):
        cache_module.embed_dataset(dataset, EmbeddingCache(tmp_path / "c", tiny_model), progress=False)


def test_an_entry_of_an_older_format_is_rejected_saying_so(tiny_model, tmp_path):
    from safetensors.torch import save_file

    image = random_image(40, 40)
    cache = EmbeddingCache(tmp_path, tiny_model)
    key = image_key(image)
    cache.path(key).parent.mkdir(parents=True)
    old = {"format": "amodal_sam-embedding-1", "encoder": cache.encoder, "image": key}
    save_file({"embedding": torch.zeros(cache.shape)}, str(cache.path(key)), metadata=old)
    with pytest.warns(
        UserWarning, match="rejected: entry format 'amodal_sam-embedding-1', not 'amodal_sam-embedding-2'"
    ):
        assert not torch.equal(cache.embedding(image), torch.zeros(cache.shape))


def _dataset_with_a_repeated_image(root):
    """Six images, the fourth record's image file a copy of the first's: five distinct images."""
    import json
    import shutil

    from amodal_sam.data.readers import load_dataset

    annotations = write_occlusion_dataset(root, count=6)
    shutil.copyfile(root / "1.png", root / "4.png")
    content = json.loads(annotations.read_text())
    assert [image["file_name"] for image in content["images"]][:4] == ["1.png", "2.png", "3.png", "4.png"]
    return annotations, load_dataset(annotations)


def test_processes_split_the_distinct_images_between_them(tiny_model, tmp_path):
    from amodal_sam.embedding_cache import embed_dataset

    _, dataset = _dataset_with_a_repeated_image(tmp_path / "data")
    caches = [EmbeddingCache(tmp_path / f"cache{rank}", tiny_model) for rank in range(2)]
    keys = [embed_dataset(dataset, cache, progress=False, rank=rank, world=2) for rank, cache in enumerate(caches)]
    assert keys[0] == keys[1] and len(set(keys[0])) == 5 and keys[0][0] == keys[0][3]
    # distinct images in order 1, 2, 3, 5, 6: rank 0 takes the 1st, 3rd and 5th, rank 1 the others
    assert [cache.stats.computed for cache in caches] == [3, 2]
    computed = [{path.stem for path in cache.folder.rglob("*.safetensors")} for cache in caches]
    assert computed[0] == {keys[0][i] for i in (0, 2, 5)} and computed[1] == {keys[0][i] for i in (1, 4)}
    with pytest.raises(ValueError, match="rank"):
        embed_dataset(dataset, caches[0], progress=False, rank=2, world=2)


def test_embed_under_torchrun_with_two_gloo_processes_embeds_each_image_once(tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    annotations, dataset = _dataset_with_a_repeated_image(tmp_path / "data")
    command = ["embed", "--data", str(annotations), "--sam", "tiny", "--device", "cpu"]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    script = shutil.which("amodal-sam")
    assert script is not None, "the amodal-sam console script is not installed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run(
        [*launch, script, *command, "--cache", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "6 images over 2 processes: 5 embedded, 0 already cached, 0 bad entries replaced" in run.stdout
    assert main([*command, "--cache", str(tmp_path / "one")]) == 0
    two = {path.relative_to(tmp_path / "two"): path for path in (tmp_path / "two").rglob("*.safetensors")}
    one = {path.relative_to(tmp_path / "one"): path for path in (tmp_path / "one").rglob("*.safetensors")}
    assert len(one) == 5 and set(two) == set(one)
    model = AmodalSAM.random("tiny", seed=0)
    for image in (dataset.load_image(record) for record in dataset.records):
        key = image_key(image)
        (entry,) = [name for name in one if name.stem == key]
        from safetensors.torch import load_file

        torch.testing.assert_close(load_file(two[entry])["embedding"], load_file(one[entry])["embedding"])
    assert model is not None

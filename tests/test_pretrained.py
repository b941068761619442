"""Saving and loading: local folders, SAM checkpoints, a fake offline Hub cache, push_to_hub."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from amodal_sam import AmodalPredictor, AmodalSAM
from amodal_sam.cli import main
from amodal_sam.config import AmodalConfig, sam_spec_for
from amodal_sam.image_io import write_mask, write_rgb
from amodal_sam.model_files import load_pretrained
from amodal_sam.sam_weights import sam_to_transformers, state_digest

from conftest import TEST_DEVICE, ellipse_mask, random_image, write_fake_hub_repo

SIZE = (90, 120)


def _outputs(model):
    predictor = AmodalPredictor(model, device=TEST_DEVICE)
    predictor.set_image(random_image(*SIZE))
    return predictor.complete(visible_mask=ellipse_mask(*SIZE))


def _perturb(model, seed=5):
    """Give the trainable head weights SAM does not have, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.trainable_parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model


def _assert_same(a, b):
    np.testing.assert_array_equal(a.low_res_logits, b.low_res_logits)
    np.testing.assert_array_equal(a.hypothesis_scores, b.hypothesis_scores)
    np.testing.assert_array_equal(a.amodal, b.amodal)


def test_round_trip_gives_identical_outputs(tiny_model, tmp_path):
    model = _perturb(tiny_model)
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "sam.safetensors",
    ]
    _assert_same(_outputs(AmodalSAM.from_pretrained(tmp_path / "ckpt")), _outputs(model))


def test_a_config_from_before_the_detail_branch_loads_a_decoder_without_it(tmp_path):
    model = _perturb(
        AmodalSAM(config=AmodalConfig(sam_type="tiny", sam_spec=sam_spec_for("tiny"), detail_branch=False))
    )
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["detail_branch"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = AmodalSAM.from_pretrained(tmp_path)
    assert not loaded.decoder.has_detail
    _assert_same(_outputs(loaded), _outputs(model))


def test_saved_weights_hold_only_the_trainable_head(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    keys = load_file(str(tmp_path / "model.safetensors")).keys()
    assert keys == tiny_model.trainable_state_dict().keys()
    assert not any(k.startswith(("sam.", "image_encoder")) for k in keys)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["sam_type"] == "tiny" and config["sam_source"] == "sam.safetensors"
    assert config["sam_spec"]["image_size"] == 256
    for name in ("model.safetensors", "sam.safetensors"):  # the Hub's convention: transformers reads "format"
        with safe_open(str(tmp_path / name), framework="pt") as handle:
            assert handle.metadata()["format"] == "pt", name


def test_from_sam_pth_then_save_names_the_sam_checkpoint(tiny_model, tmp_path):
    pth = tmp_path / "sam_tiny.pth"
    torch.save(tiny_model.sam.state_dict(), pth)
    model = _perturb(AmodalSAM.from_sam(str(pth), model_type="tiny"))
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["sam_source"] == str(pth.resolve())
    assert not (tmp_path / "ckpt" / "sam.safetensors").exists()
    _assert_same(_outputs(AmodalSAM.from_pretrained(tmp_path / "ckpt")), _outputs(model))


def test_a_relative_sam_source_is_relative_to_the_model_folder(tiny_model, tmp_path, monkeypatch):
    pth = tmp_path / "shared" / "sam_tiny.pth"
    pth.parent.mkdir()
    torch.save(tiny_model.sam.state_dict(), pth)
    model = _perturb(AmodalSAM.from_sam(str(pth), model_type="tiny"))
    folder = tmp_path / "models" / "mine"
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["sam_source"] = "../../shared/sam_tiny.pth"  # as a user edits it, to move both together
    (folder / "config.json").write_text(json.dumps(config))
    elsewhere = tmp_path / "elsewhere" / "deeper" / "deepest"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)  # the same relative path from here names nothing
    loaded = AmodalSAM.from_pretrained(folder)
    _assert_same(_outputs(loaded), _outputs(model))
    # fine-tuned and saved in another folder (as train --init does), it still finds those weights
    loaded.save_pretrained(tmp_path / "runs" / "next")
    assert json.loads((tmp_path / "runs" / "next" / "config.json").read_text())["sam_source"] == str(pth.resolve())
    _assert_same(_outputs(AmodalSAM.from_pretrained(tmp_path / "runs" / "next")), _outputs(model))
    config["sam_source"] = "../missing/sam_tiny.pth"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match=r"relative to the model folder"):
        AmodalSAM.from_pretrained(folder)


def test_a_model_with_its_sam_bundled_saves_elsewhere_with_its_sam_bundled(tmp_path):
    model = _perturb(AmodalSAM.random("tiny", seed=0))  # random SAM: bundled as sam.safetensors
    model.save_pretrained(tmp_path / "first")
    loaded = AmodalSAM.from_pretrained(tmp_path / "first")
    assert loaded.config.sam_source == "sam.safetensors"  # not the first folder's absolute path
    loaded.save_pretrained(tmp_path / "second")  # as train --init does
    replaced = AmodalSAM.from_pretrained(tmp_path / "first", sam_checkpoint=str(tmp_path / "first/sam.safetensors"))
    assert replaced.config.sam_source == "sam.safetensors"
    replaced.save_pretrained(tmp_path / "third")
    for name in ("second", "third"):
        assert json.loads((tmp_path / name / "config.json").read_text())["sam_source"] == "sam.safetensors"
        assert (tmp_path / name / "sam.safetensors").is_file()
    expected = _outputs(model)
    for path in (tmp_path / "first").iterdir():  # the copies stand alone
        path.unlink()
    for name in ("second", "third"):
        _assert_same(_outputs(AmodalSAM.from_pretrained(tmp_path / name)), expected)


def test_from_sam_starts_the_head_from_sams_decoder(tiny_model, tmp_path):
    pth = tmp_path / "sam_tiny.pth"
    torch.save(tiny_model.sam.state_dict(), pth)
    model = AmodalSAM.from_sam(str(pth), model_type="tiny")
    assert torch.equal(model.decoder.iou_token.weight, tiny_model.sam.mask_decoder.iou_token.weight)
    assert torch.equal(model.decoder.mask_tokens.weight[:4], tiny_model.sam.mask_decoder.mask_tokens.weight)


def test_pth_and_transformers_layout_give_the_same_model(tiny_model, tmp_path):
    pth = tmp_path / "sam_tiny.pth"
    torch.save(tiny_model.sam.state_dict(), pth)
    hf_file = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in sam_to_transformers(tiny_model.sam.state_dict()).items()}, str(hf_file))
    _assert_same(_outputs(AmodalSAM.from_sam(str(pth), "tiny")), _outputs(AmodalSAM.from_sam(str(hf_file), "tiny")))


def test_wrong_model_type_for_sam_weights_is_an_error_naming_tensors(tiny_model, tmp_path):
    pth = tmp_path / "sam_tiny.pth"
    torch.save(tiny_model.sam.state_dict(), pth)
    with pytest.raises(ValueError, match=r"SAM weights .*sam_tiny.pth.* \(vit_b\) do not fit .*mis-shaped"):
        AmodalSAM.from_sam(str(pth), model_type="vit_b")


def test_loading_is_strict_about_the_head_weights(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    del weights["decoder.iou_token.weight"]
    weights["decoder.mask_tokens.weight"] = torch.zeros(3, 32)
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError) as error:
        AmodalSAM.from_pretrained(tmp_path)
    assert "missing tensors ['decoder.iou_token.weight']" in str(error.value)
    assert "decoder.mask_tokens.weight: file (3, 32), model (6, 32)" in str(error.value)


def test_corrupt_weight_files_are_named(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    intact = path.read_bytes()
    path.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(ValueError, match=r"amodal weights '.*model.safetensors' is not a readable safetensors file"):
        AmodalSAM.from_pretrained(tmp_path)
    path.write_bytes(intact)
    weights = load_file(str(path))
    weights["decoder.iou_token.weight"][0, 0] = float("nan")  # as if bytes were overwritten
    save_file(weights, str(path))
    with pytest.raises(
        ValueError, match=r"non-finite values \(NaN or infinity: a corrupt file\?\) in \['decoder.iou_token.weight'\]"
    ):
        AmodalSAM.from_pretrained(tmp_path)


def test_weights_whose_bytes_changed_after_saving_are_refused(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    for name in ("model.safetensors", "sam.safetensors"):
        path = tmp_path / name
        intact = path.read_bytes()
        changed = bytearray(intact)
        changed[-3] ^= 0x01  # one bit of the last tensor's data: still finite, still readable
        path.write_bytes(bytes(changed))
        with pytest.raises(ValueError, match=f"{name}' changed since it was saved"):
            AmodalSAM.from_pretrained(tmp_path)
        path.write_bytes(intact)
    AmodalSAM.from_pretrained(tmp_path)  # intact again: loads


def test_missing_files_are_named(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        AmodalSAM.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "something_else"}')
    with pytest.raises(ValueError, match="not an amodal_sam config"):
        AmodalSAM.from_pretrained(tmp_path)


def test_loads_from_a_fake_hub_cache_offline(tiny_model, tmp_path):
    model = _perturb(tiny_model)
    model.save_pretrained(tmp_path / "saved")
    cache = tmp_path / "hub"
    write_fake_hub_repo(cache, "someone/amodal-tiny", {p.name: p for p in (tmp_path / "saved").iterdir()})
    loaded = AmodalSAM.from_pretrained("someone/amodal-tiny", cache_dir=str(cache), local_files_only=True)
    _assert_same(_outputs(loaded), _outputs(model))


def test_missing_hub_files_offline_say_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="not in the local Hub cache, and downloading is off"):
        AmodalSAM.from_pretrained("someone/absent", cache_dir=str(tmp_path), local_files_only=True)


def test_from_sam_reads_a_transformers_layout_hub_repo_offline(tiny_model, tmp_path):
    hf_file = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in sam_to_transformers(tiny_model.sam.state_dict()).items()}, str(hf_file))
    cache = tmp_path / "hub"
    write_fake_hub_repo(cache, "facebook/sam-vit-base", {"model.safetensors": hf_file})
    model = AmodalSAM.from_sam("facebook/sam-vit-base", "tiny", cache_dir=str(cache), local_files_only=True)
    assert model.config.sam_source == "facebook/sam-vit-base"
    for key, tensor in tiny_model.sam.state_dict().items():
        assert torch.equal(model.sam.state_dict()[key], tensor), key


def test_hf_hub_offline_environment_is_honoured(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "saved")
    cache = tmp_path / "hub"
    write_fake_hub_repo(cache, "someone/amodal-tiny", {p.name: p for p in (tmp_path / "saved").iterdir()})
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache))
    code = (
        "from amodal_sam import AmodalSAM; m = AmodalSAM.from_pretrained('someone/amodal-tiny'); "
        "print(m.config.sam_type)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tiny"


def _hub_unreachable(monkeypatch):
    """The Hub cannot be reached; every hf_hub_download call is recorded."""
    import amodal_sam.hub as hub_module

    calls = []
    download = hub_module.hf_hub_download

    def recorded(**kwargs):
        calls.append(kwargs)
        return download(**kwargs)

    monkeypatch.setattr(hub_module, "hub_unreachable_reason", lambda endpoint: "huggingface.co:443: no route")
    monkeypatch.setattr(hub_module, "hf_hub_download", recorded)
    return calls


def test_with_the_hub_unreachable_a_cached_model_loads_without_asking(tiny_model, tmp_path, monkeypatch):
    calls = _hub_unreachable(monkeypatch)
    tiny_model.save_pretrained(tmp_path / "saved")
    cache = tmp_path / "hub"
    write_fake_hub_repo(cache, "someone/amodal-tiny", {p.name: p for p in (tmp_path / "saved").iterdir()})
    loaded = AmodalSAM.from_pretrained("someone/amodal-tiny", cache_dir=str(cache))  # no local_files_only
    assert loaded.config.sam_type == "tiny"
    assert calls and all(call["local_files_only"] for call in calls)  # the cache only: no retries


def test_with_the_hub_unreachable_an_uncached_model_fails_at_once_saying_why(tmp_path, monkeypatch, capsys):
    from amodal_sam.hub import HubUnreachableError

    calls = _hub_unreachable(monkeypatch)
    with pytest.raises(
        HubUnreachableError,
        match=r"'config.json' of Hub repo 'someone/absent' is not in the local "
        r"Hub cache, and the Hub \(https://huggingface.co\) cannot be reached \(huggingface.co:443: "
        r"no route\); offline, pass a local folder .* or set HF_HUB_OFFLINE=1",
    ):
        AmodalSAM.from_pretrained("someone/absent", cache_dir=str(tmp_path))
    assert [call["local_files_only"] for call in calls] == [True]
    # from_sam keeps the real cause too (it used to say the repo had no model.safetensors)
    with pytest.raises(HubUnreachableError, match="'model.safetensors' of Hub repo 'facebook/sam-vit-base' is not in"):
        AmodalSAM.from_sam("facebook/sam-vit-base", cache_dir=str(tmp_path))
    image = tmp_path / "image.png"
    write_rgb(image, random_image(32, 32))
    write_mask(tmp_path / "visible.png", np.ones((32, 32), bool))
    code = main(
        [
            "complete",
            str(image),
            "--visible",
            str(tmp_path / "visible.png"),
            "--model",
            "someone/absent",
            "--out",
            str(tmp_path / "out.png"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot be reached" in err


def test_the_hub_probe_tells_a_closed_port_from_a_listening_one():
    from amodal_sam.hub import hub_unreachable_reason

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert hub_unreachable_reason(f"http://127.0.0.1:{port}") is None
    reason = hub_unreachable_reason(f"http://127.0.0.1:{port}/closed-now")  # another URL: asked afresh
    assert reason is not None and reason.startswith(f"127.0.0.1:{port}: ")


def test_push_to_hub_uploads_the_saved_folder(tiny_model, monkeypatch):
    seen = {}

    def create_repo(self, repo_id, **kwargs):
        seen["created"] = (repo_id, kwargs.get("private"), kwargs.get("exist_ok"), kwargs.get("repo_type"), self.token)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        listed = sorted(os.listdir(folder_path))
        seen["uploaded"] = (
            repo_id,
            listed,
            kwargs.get("commit_message"),
            kwargs.get("revision"),
            kwargs.get("repo_type"),
        )
        return "commit-info"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    pushed = tiny_model.push_to_hub("me/amodal-tiny", private=True, commit_message="first", token="t0k", revision="dev")
    assert pushed == "commit-info"
    assert seen["created"] == ("me/amodal-tiny", True, True, "model", "t0k")
    files = ["README.md", "config.json", "model.safetensors", "sam.safetensors"]
    assert seen["uploaded"] == ("me/amodal-tiny", files, "first", "dev", "model")
    tiny_model.push_to_hub("me/amodal-tiny")
    assert seen["uploaded"][2] == "Upload amodal_sam model"


def test_push_to_hub_bundles_a_sam_that_has_a_source_only_when_asked(tiny_model, tmp_path, monkeypatch):
    uploaded = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: None)
    monkeypatch.setattr(
        HfApi, "upload_folder", lambda self, *, repo_id, folder_path, **kwargs: uploaded.append(os.listdir(folder_path))
    )
    pth = tmp_path / "sam_tiny.pth"
    torch.save(tiny_model.sam.state_dict(), pth)
    model = AmodalSAM.from_sam(str(pth), "tiny")  # its SAM reloads from the .pth: not bundled by default
    model.push_to_hub("me/amodal-tiny")
    model.push_to_hub("me/amodal-tiny", include_sam=True)
    assert [sorted(files) for files in uploaded] == [
        ["README.md", "config.json", "model.safetensors"],
        ["README.md", "config.json", "model.safetensors", "sam.safetensors"],
    ]


def test_hub_options_reach_huggingface_hub(tiny_model, tmp_path, monkeypatch):
    import amodal_sam.hub as hub_module

    calls = []

    def fake_download(**kwargs):
        calls.append(kwargs)
        raise hub_module.LocalEntryNotFoundError("not cached")

    monkeypatch.setattr(hub_module, "hf_hub_download", fake_download)
    monkeypatch.setattr(hub_module, "hub_unreachable_reason", lambda endpoint: None)
    with pytest.raises(OSError, match="could not be downloaded"):
        hub_module.resolve_sam_checkpoint(  # a model repo that ships its SAM
            "sam.safetensors",
            model_dir="someone/amodal",
            revision="v2",
            cache_dir="c",
            token="t",
            local_files_only=False,
        )
    with pytest.raises(OSError):
        hub_module.resolve_sam_checkpoint("someone/sam", cache_dir="c", token="t")
    expected = {"revision": "v2", "cache_dir": "c", "token": "t", "local_files_only": False}
    assert {k: calls[0][k] for k in expected} == expected
    assert (calls[0]["repo_id"], calls[0]["filename"]) == ("someone/amodal", "sam.safetensors")
    # a transformers-layout SAM repo: each weights file name in turn, with the same options
    assert [(c["repo_id"], c["filename"], c["token"], c["local_files_only"]) for c in calls[1:]] == [
        ("someone/sam", "model.safetensors", "t", False),
        ("someone/sam", "pytorch_model.bin", "t", False),
    ]
    with pytest.raises(OSError):
        hub_module.resolve_file("someone/amodal", "config.json")
    assert calls[-1]["local_files_only"] is False  # online unless asked
    for load in (AmodalSAM.from_pretrained, load_pretrained):  # and so is loading a model by its Hub id
        with pytest.raises(OSError):
            load("someone/amodal", token="t")
        assert (calls[-1]["repo_id"], calls[-1]["filename"]) == ("someone/amodal", "config.json")
        assert (calls[-1]["local_files_only"], calls[-1]["token"]) == (False, "t")


def test_a_repo_without_model_safetensors_is_asked_for_pytorch_model_bin(tmp_path, monkeypatch):
    import amodal_sam.hub as hub_module

    asked = []

    def fake_download(**kwargs):
        asked.append(kwargs["filename"])
        if kwargs["filename"] == "model.safetensors":
            raise hub_module.EntryNotFoundError("no such file in the repo")
        return str(tmp_path / kwargs["filename"])

    monkeypatch.setattr(hub_module, "hf_hub_download", fake_download)
    monkeypatch.setattr(hub_module, "hub_unreachable_reason", lambda endpoint: None)
    assert hub_module.resolve_sam_checkpoint("someone/sam") == tmp_path / "pytorch_model.bin"
    assert asked == ["model.safetensors", "pytorch_model.bin"]


def test_sam_weights_are_looked_for_under_each_hub_file_name_in_turn(tiny_model, tmp_path):
    bin_file = tmp_path / "pytorch_model.bin"
    torch.save(sam_to_transformers(tiny_model.sam.state_dict()), bin_file)
    cache = tmp_path / "hub"
    write_fake_hub_repo(cache, "facebook/sam-vit-base", {"pytorch_model.bin": bin_file})  # no model.safetensors
    model = AmodalSAM.from_sam("facebook/sam-vit-base", "tiny", cache_dir=str(cache), local_files_only=True)
    for key, tensor in tiny_model.sam.state_dict().items():
        assert torch.equal(model.sam.state_dict()[key], tensor), key


@pytest.mark.parametrize("name", ["gone.pth", "gone.pt", "gone.bin", "gone.safetensors"])
def test_a_missing_sam_file_is_named_not_looked_for_on_the_hub(name, tmp_path):
    from amodal_sam.hub import resolve_sam_checkpoint

    with pytest.raises(FileNotFoundError, match=f"SAM checkpoint '.*{name}' does not exist"):
        resolve_sam_checkpoint(str(tmp_path / name))


def test_saving_is_atomic(tiny_model, tmp_path, monkeypatch):
    tiny_model.save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()
    import amodal_sam.model_files as module

    def failing_save(tensors, path, metadata=None):
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(module, "save_file", failing_save)
    with pytest.raises(OSError):
        _perturb(tiny_model).save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_sam_checkpoint_replaces_the_sam_weights_the_config_names(tmp_path):
    trained = _perturb(AmodalSAM.random("tiny", seed=0))
    trained.save_pretrained(tmp_path / "model")  # bundles seed 0's SAM as sam.safetensors
    other_sam = AmodalSAM.random("tiny", seed=1).sam.state_dict()
    torch.save(other_sam, tmp_path / "other_sam.pth")
    default = AmodalSAM.from_pretrained(tmp_path / "model")
    with pytest.warns(UserWarning, match="are not this model's frozen SAM .*using them, as sam_checkpoint= asks"):
        replaced = AmodalSAM.from_pretrained(tmp_path / "model", sam_checkpoint=str(tmp_path / "other_sam.pth"))
    for key, tensor in other_sam.items():
        assert torch.equal(replaced.sam.state_dict()[key], tensor), key
    assert not torch.equal(
        default.sam.image_encoder.patch_embed.proj.weight, replaced.sam.image_encoder.patch_embed.proj.weight
    )
    for key, tensor in trained.trainable_state_dict().items():  # the head is the saved one either way
        assert torch.equal(replaced.trainable_state_dict()[key], tensor), key


def test_a_model_on_a_local_transformers_folder_saves_and_reloads_from_anywhere(tiny_model, tmp_path, monkeypatch):
    folder = tmp_path / "sam-tiny-hf"
    folder.mkdir()
    save_file(
        {k: v.contiguous() for k, v in sam_to_transformers(tiny_model.sam.state_dict()).items()},
        str(folder / "model.safetensors"),
    )
    monkeypatch.chdir(tmp_path)
    model = _perturb(AmodalSAM.from_sam("sam-tiny-hf", "tiny"))  # typed relative to the working folder
    assert model.config.sam_source == str(folder.resolve())
    assert model.config.sam_sha256 == state_digest(tiny_model.sam.state_dict())
    model.save_pretrained(tmp_path / "saved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _assert_same(_outputs(AmodalSAM.from_pretrained(tmp_path / "saved")), _outputs(model))


def test_a_moved_sam_file_is_named_with_how_to_pass_it_and_loads_with_sam_checkpoint(tiny_model, tmp_path):
    pth = tmp_path / "sam_tiny.pth"
    torch.save(tiny_model.sam.state_dict(), pth)
    model = _perturb(AmodalSAM.from_sam(str(pth), "tiny"))
    model.save_pretrained(tmp_path / "saved")
    pth.rename(tmp_path / "moved.pth")
    with pytest.raises(
        FileNotFoundError,
        match=r"this model's frozen SAM \(tiny, sha256 [0-9a-f]{16}\.\.\.\) is not where its config says "
        r"\(.*sam_tiny.pth' does not exist\); pass those weights with sam_checkpoint= \(Python\) or "
        r"--sam-checkpoint \(command line\)",
    ):
        AmodalSAM.from_pretrained(tmp_path / "saved")
    loaded = AmodalSAM.from_pretrained(tmp_path / "saved", sam_checkpoint=str(tmp_path / "moved.pth"))
    _assert_same(_outputs(loaded), _outputs(model))


def test_other_weights_at_the_recorded_place_are_refused(tiny_model, tmp_path):
    pth = tmp_path / "sam_tiny.pth"
    torch.save(tiny_model.sam.state_dict(), pth)
    AmodalSAM.from_sam(str(pth), "tiny").save_pretrained(tmp_path / "saved")
    torch.save(AmodalSAM.random("tiny", seed=3).sam.state_dict(), pth)  # replaced in place
    with pytest.raises(ValueError, match="sam_tiny.pth' are not this model's frozen SAM .* sam_checkpoint="):
        AmodalSAM.from_pretrained(tmp_path / "saved")

"""The model card: written by save_pretrained / push_to_hub / calibrate through huggingface_hub,
parsed back by ModelCard.load, saying what the model is and what it needs."""

import dataclasses
import os

import pytest
from huggingface_hub import HfApi, ModelCard

from amodal_sam import AmodalSAM
from amodal_sam.calibration import calibrate_model
from amodal_sam.config import read_config_file, write_config_file
from amodal_sam.data.readers import load_dataset
from amodal_sam.model_card import model_card, sam_hub_id, short_source

from conftest import write_occlusion_dataset


def _card(folder) -> ModelCard:
    return ModelCard.load(folder / "README.md")


def test_save_pretrained_writes_a_card_whose_metadata_parses_back(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    card = _card(tmp_path)
    data = card.data.to_dict()
    assert data["library_name"] == "amodal_sam" and data["license"] == "apache-2.0"
    assert {"amodal-segmentation", "segment-anything"} <= set(data["tags"])
    assert data["pipeline_tag"] == "image-segmentation"
    assert "base_model" not in data  # its SAM is bundled random weights, not a Hub repo
    # a random tiny encoder is not SAM, and the card says so; the bundled SAM file is named
    assert "Its frozen encoder is not SAM" in card.text and "`sam.safetensors`" in card.text
    assert 'AmodalSAM.from_pretrained("<this repo id or folder>")' in card.text
    assert "No training recorded" in card.text and "No calibration recorded" in card.text


def test_a_sam_from_the_hub_is_the_base_model_and_a_published_encoder_gets_no_warning(tiny_model):
    config = dataclasses.replace(
        tiny_model.config, sam_type="vit_b", sam_source="facebook/sam-vit-base", sam_sha256="ab" * 32
    )
    card = model_card(config, repo_id="me/amodal-vit-b")
    assert card.data.to_dict()["base_model"] == "facebook/sam-vit-base"
    assert "not SAM" not in card.text
    assert 'AmodalSAM.from_pretrained("me/amodal-vit-b")' in card.text and "ab" * 32 in card.text
    demo = model_card(dataclasses.replace(config, sam_type="demo", sam_source="sam.safetensors"))
    assert "seeded random weights" in demo.text and "base_model" not in demo.data.to_dict()


@pytest.mark.parametrize(
    ("source", "hub_id"),
    [
        ("facebook/sam-vit-huge", "facebook/sam-vit-huge"),
        ("/home/me/sam_vit_b_01ec64.pth", None),
        ("weights/sam.safetensors", None),  # a relative file, not a repo
        ("sam.safetensors", None),
        (None, None),
    ],
)
def test_only_hub_repos_become_the_base_model(source, hub_id):
    assert sam_hub_id(source) == hub_id


def test_the_card_shows_each_modes_decision(tiny_model):
    config = dataclasses.replace(
        tiny_model.config,
        hidden_threshold=0.7,
        outside_threshold=1.0,
        plausible_share=0.8,
        scene_hidden_threshold=0.95,
        scene_outside_threshold=0.99,
        scene_plausible_share=0.9,
    )
    text = model_card(config).text
    assert "| single object | 0.7 | never | 0.8 |" in text
    assert "| known occluders (scene) | 0.95 | 0.99 | 0.9 |" in text


def test_calibrate_records_its_sets_and_the_chosen_scores_in_config_and_card(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "model")
    data = write_occlusion_dataset(tmp_path / "held-out", count=2)
    chosen, scores = calibrate_model(load_dataset(data), folder, [0.3, 0.6], progress=False)
    chosen_set = next(s for s in scores if s.decision == chosen).sets[0]
    record = read_config_file(folder / "config.json").extra["calibration"]
    assert record["sets"] == [{"data": "held-out/annotations.json", **dataclasses.asdict(chosen_set)}]
    text = _card(folder).text
    assert f"| held-out/annotations.json | {chosen_set.aiou:.4f} | {chosen_set.oiou:.4f} |" in text
    assert "No calibration recorded" in text  # scene mode is not calibrated yet: its section says so
    # scene calibration adds its own record and keeps the single-object one
    calibrate_model(load_dataset(data), folder, [0.3, 0.6], scene=True, progress=False)
    extra = read_config_file(folder / "config.json").extra
    assert set(extra) >= {"calibration", "scene_calibration"} and "No calibration recorded" not in _card(folder).text


def test_a_saved_card_keeps_the_records_of_a_loaded_model(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "a")
    config = read_config_file(folder / "config.json")
    record = {"data": ["train/annotations.json"], "instances": 12, "epochs": 3, "val_aiou": 0.8, "val_oiou": 0.4}
    write_config_file(folder / "config.json", dataclasses.replace(config, extra={"training": record}))
    AmodalSAM.from_pretrained(folder).save_pretrained(tmp_path / "b")
    text = _card(tmp_path / "b").text
    assert "- data: train/annotations.json" in text and "AIoU 0.8000, OIoU 0.4000" in text


def test_push_to_hub_uploads_a_card_that_loads_the_repo(tiny_model, monkeypatch):
    cards = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: None)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        cards.append(ModelCard.load(os.path.join(folder_path, "README.md")))

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    tiny_model.push_to_hub("me/amodal-tiny")
    assert 'AmodalSAM.from_pretrained("me/amodal-tiny")' in cards[0].text
    assert "--model me/amodal-tiny" in cards[0].text


def test_data_paths_are_shown_without_the_local_folders():
    assert short_source("/home/me/data/calib/annotations.json") == "calib/annotations.json"
    assert short_source("") == "(in memory)"

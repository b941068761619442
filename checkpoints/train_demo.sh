#!/usr/bin/env bash
# The exact commands that made checkpoints/demo: synthetic occlusion scenes from ../shared/data
# (every pasted occluder is an annotated object too), a seeded random frozen SAM-architecture
# encoder (spec "demo"), the amodal decoder (with its detail branch and the known-occluder input of
# scene mode, given to half of the samples, each occluder's boundary moved by a few pixels in half of
# those: TrainOptions.occluder_noise_prob) trained on 2 CPU cores (about an hour in all: 2 minutes
# to synthesise, 11 to embed, 50 to train), its hidden_threshold chosen on a held-out calibration
# split, then the validation table against the baselines, single-object and scene mode.
#   bash checkpoints/train_demo.sh [WORK_DIR]      (run from the project root)
set -euo pipefail
DATA=../shared/data
WORK=${1:-demo-work}

# Training split: every DAVIS sequence but the validation three (and bmx-trees, whose rider is
# already occluded), plus coco128; 24 occluded scenes of each whole object (13198 objects in all:
# the targets and their occluders).
amodal-sam synth $DATA/davis2016 $DATA/coco128-seg --exclude breakdance motocross-jump soapbox bmx-trees \
    --samples-per-object 24 --max-side 512 --seed 0 --out $WORK/train
# Validation split: DAVIS breakdance, motocross-jump and soapbox, occluded by coco128 objects,
# without the rotation / scale variation of training.
amodal-sam synth $DATA/davis2016 --include breakdance motocross-jump soapbox --occluders-from $DATA/coco128-seg \
    --samples-per-object 4 --max-side 512 --seed 1 --max-rotation 0 --scale 1,1 --out $WORK/val

# No --val: the model is the last epoch's, so the validation split plays no part in choosing it.
# The saved config records clean_masks on and, its SAM being random, sam_prompts off (point and
# box prompts are refused).
amodal-sam train --data $WORK/train/annotations.json --sam demo --sam-seed 0 \
    --epochs 4 --batch-size 8 --lr 1e-3 --seed 0 --scene-prob 0.5 --cache $WORK/cache --out $WORK/run

# Calibration split: DAVIS bmx-trees, kept out of training and out of validation, with 48 simple
# generated scenes (seed 1; the adoption report's own are seed 0) and, for scene mode, the real
# photos of cocoa-sln4 (cocoa-sample stays for evaluation). Among the decisions that keep AIoU at or
# above the visible masks' on every set, the one with the largest AIoU gain over the better
# baseline, averaged over the sets, goes into the model's config, once for single-object mode
# (hidden_threshold, ...) and once for scene mode (scene_hidden_threshold, ...).
amodal-sam synth $DATA/davis2016 --include bmx-trees --occluders-from $DATA/coco128-seg \
    --samples-per-object 4 --max-side 512 --seed 2 --max-rotation 0 --scale 1,1 --out $WORK/calib
python -c "import sys; from amodal_sam.data.shapes import write_shape_scenes; write_shape_scenes(sys.argv[1], 48, 1)" \
    $WORK/shapes-calib
amodal-sam calibrate --data $WORK/calib/annotations.json $WORK/shapes-calib/annotations.json \
    --model $WORK/run --cache $WORK/cache
amodal-sam calibrate --data $WORK/calib/annotations.json $DATA/cocoa-sln4/annotations.json \
    $WORK/shapes-calib/annotations.json --model $WORK/run --cache $WORK/cache --scene

python benchmarks/oiou.py --data $WORK/val/annotations.json --model $WORK/run --out $WORK/report --thresholds 0.5,0.6,0.7,0.8,0.9
# Real photos the model never saw in training or calibration (evaluation only)
python benchmarks/oiou.py --data $DATA/cocoa-sample --model $WORK/run --out $WORK/report-cocoa
mkdir -p checkpoints/demo
cp $WORK/run/config.json $WORK/run/model.safetensors $WORK/run/sam.safetensors checkpoints/demo/

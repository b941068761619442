"""Benchmarks run end to end on tiny settings (smoke: no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_throughput_smoke_on_cpu(tmp_path):
    out = tmp_path / "throughput.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "throughput.py"),
            "--model-type",
            "tiny",
            "--device",
            "cpu",
            "--dtype",
            "bf16",
            "--instances",
            "1,3",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["weights"].startswith("seeded random")
    assert set(result["speedup"]["decoder"]) == {"1", "3"}
    # both sides' end to end is measured as one span, not summed from the encoder and decoder
    reference = result["reference"]
    for n in (1, 3):
        summed = 1 / reference["encoder_images_per_s"] + n / reference["decoder_instances_per_s"][str(n)]
        assert reference["end_to_end_s"][str(n)] > 0 and reference["end_to_end_s"][str(n)] != pytest.approx(
            summed, rel=1e-9
        )
    assert result["reference"]["encoder_images_per_s"] > 0 and result["ours"]["encoder_images_per_s"] > 0
    assert result["agreement"]["embedding"]["cosine"] > 0.99  # bf16 against the fp32 reference
    assert "| encoder images/s |" in done.stdout

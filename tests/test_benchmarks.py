"""Benchmarks run end to end on tiny settings (smoke: no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

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
    assert result["reference"]["encoder_images_per_s"] > 0 and result["ours"]["encoder_images_per_s"] > 0
    assert result["agreement"]["embedding"]["cosine"] > 0.99  # bf16 against the fp32 reference
    assert "| encoder images/s |" in done.stdout

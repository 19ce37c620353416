"""Batch files whose image jobs make a splat or a depth map (`output = "splat" | "depth"`): how
they are planned, estimated and refused, before anything is sent. The fast tier (plain CPython,
no Blender); the run itself is in tests/test_batch.py.
"""

from __future__ import annotations

import pytest

from sample_files import write_png

# Every model option set in [defaults], as a real batch would have them: they must not reach a
# splat or depth request, and must not make it fail either.
MIXED = """
[defaults]
options = { model = "v3.1-20260211", face_limit = 8000, texture_quality = "detailed" }
post = { export = "STL" }
seed = 11

[qc]
max_faces = 9000
max_non_manifold_edges = 0
min_size = 0.2

[[jobs]]
name = "statue"
image = "statue.png"
output = "splat"
variants = 2

[[jobs]]
name = "room"
image = "statue.png"
output = "depth"
options = { kind = "color", process_res = 1008 }
qc = { max_size = 5.0 }

[[jobs]]
name = "lion"
prompt = "a bronze lion, product photo"
text_to_image = true
output = "depth"

[[jobs]]
name = "idol"
image = "statue.png"
"""


@pytest.fixture
def batchfile(tmod):
    return tmod("core.batch.batchfile")


@pytest.fixture
def load(batchfile, tmp_path):
    write_png(tmp_path / "statue.png")
    return lambda text: batchfile.loads(text, "toml", base_dir=tmp_path)


def test_splat_and_depth_jobs_are_planned_as_their_own_tasks(load, tmp_path):
    plans = {p.asset_id: p for p in load(MIXED).plans}
    image = str(tmp_path / "statue.png")

    for asset_id, seed in (("statue_v01", 11), ("statue_v02", 12)):
        (step,) = plans[asset_id].job.steps
        assert step.task_type == "image_to_splat"
        assert step.params == {"input": image, "model_seed": seed}  # no model option of [defaults]
        assert step.downloads == ("model_url",) and step.file_stem == "01_base"
        assert plans[asset_id].job.meta["kind"] == "splat" and plans[asset_id].output == "splat"

    room = plans["room_v01"]
    (step,) = room.job.steps
    assert step.task_type == "image_to_depth" and step.downloads == ("depth_image_url",)
    assert step.params == {"input": image, "kind": "color", "process_res": 1008}
    assert room.job.meta["kind"] == "depth" and room.job.meta["images"] == ["statue.png"]

    concept, depth = plans["lion_v01"].job.steps
    assert (concept.task_type, depth.task_type, depth.input_from) == ("text_to_image", "image_to_depth", 0)
    assert depth.params == {"kind": "gray", "process_res": 504}  # the server's defaults, sent

    # The model job of the same file keeps every default: options, post-step, seed and QC.
    idol = plans["idol_v01"]
    assert [s.task_type for s in idol.job.steps] == ["image_to_model", "convert_model"]
    assert idol.job.steps[0].params["face_limit"] == 8000 and idol.job.steps[0].params["model_seed"] == 11
    assert idol.output == "model" and idol.job.meta["kind"] == "model"
    assert idol.qc["max_faces"] == 9000


def test_splat_and_depth_qc_keeps_only_the_size_thresholds(load):
    plans = {p.asset_id: p for p in load(MIXED).plans}
    assert plans["statue_v01"].qc == {"min_size": 0.2, "max_size": 100.0}
    assert plans["room_v01"].qc == {"min_size": 0.2, "max_size": 5.0}


def test_splat_and_depth_are_estimated_as_their_task_types(load):
    batch = load(MIXED)
    plans = {p.asset_id: p for p in batch.plans}
    assert plans["statue_v01"].step_estimates == [("image_to_splat", 10.0)]
    assert plans["room_v01"].step_estimates == [("image_to_depth", 10.0)]
    assert plans["lion_v01"].step_estimates == [("text_to_image", 10.0), ("image_to_depth", 10.0)]
    assert plans["statue_v01"].estimate_is_guess  # Tripo publishes no price for them
    text = batch.describe_estimate()
    assert "room_v01" in text and "image_to_depth" in text and "rough guess" in text
    assert batch.estimate()["credits"] == sum(p.estimate for p in batch.plans)


def test_the_output_changes_the_job_id(load):
    """A rerun after switching a job's output must not adopt the old result."""
    model = load('[[jobs]]\nimage = "statue.png"\n').plans[0]
    splat = load('[[jobs]]\nimage = "statue.png"\noutput = "splat"\n').plans[0]
    depth = load('[[jobs]]\nimage = "statue.png"\noutput = "depth"\n').plans[0]
    assert len({model.job_id, splat.job_id, depth.job_id}) == 3


@pytest.mark.parametrize("text, expected", [
    ('[[jobs]]\nimage = "statue.png"\noutput = "mesh"\n',
     ['line 3: jobs[0].output: output must be one of model, splat, depth (got \'mesh\')']),
    ('[[jobs]]\nimage = "statue.png"\noutput = "depth"\noptions = { texture = false }\n',
     ["line 4: jobs[0].options.texture: 'texture' is an option of models; output = \"depth\" "
      "(Image to depth) takes only: kind, process_res"]),
    ('[[jobs]]\nimage = "statue.png"\noutput = "splat"\noptions = { face_limit = 5000, pbr = true }\n',
     ["jobs[0].options.face_limit: 'face_limit' is an option of models; output = \"splat\" "
      "(Image to splat) takes only: model_seed",
      "jobs[0].options.pbr: 'pbr' is an option of models"]),
    ('[[jobs]]\nimage = "statue.png"\noutput = "depth"\nvariants = [{ process_res = 504 }, { quad = true }]\n',
     ["line 4: jobs[0].variants[1].quad: 'quad' is an option of models"]),
    ('[[jobs]]\nimage = "statue.png"\noutput = "depth"\noptions = { process_res = 4000 }\n',
     ["line 4: jobs[0].options.process_res: process_res must be between 126 and 2016"]),
    ('[[jobs]]\nimage = "statue.png"\noutput = "depth"\noptions = { kind = "rainbow" }\n',
     ["line 4: jobs[0].options.kind: kind must be 'gray' or 'color'"]),
    ('[[jobs]]\nimage = "statue.png"\noutput = "depth"\n[jobs.post]\nrig = "biped"\nexport = ["STL"]\n',
     ['line 5: jobs[0].post.rig: rig post-processes a model, and output = "depth" makes a depth map',
      "line 6: jobs[0].post.export: export post-processes a model"]),
    ('[[jobs]]\nimage = "statue.png"\noutput = "splat"\npost = { texture_parts = true }\n',
     ["line 4: jobs[0].post.texture_parts: texture_parts post-processes a model"]),
    ('[[jobs]]\nimage = "statue.png"\noutput = "splat"\nqc = { max_faces = 100 }\n',
     ["line 4: jobs[0].qc.max_faces: qc.max_faces measures meshes; a Gaussian splat (output = "
      "\"splat\") is checked for its result and its size only (min_size, max_size)"]),
    ('[[jobs]]\nimage = "statue.png"\noutput = "depth"\nseed = 4\n',
     ["line 4: jobs[0].seed: seed sets model_seed, and Image to depth (output = \"depth\") takes no seed"]),
    ('[[jobs]]\nimage = "statue.png"\noutput = "depth"\nvariants = 3\n',
     ["line 4: jobs[0].variants: variants = 3 would make 3 identical results"]),
    ('[[jobs]]\nimages = ["statue.png", "statue.png"]\noutput = "splat"\n',
     ['line 2: jobs[0].images: output = "splat" reads one image']),
    ('[[jobs]]\nprompt = "a lion"\noutput = "depth"\n',
     ['line 3: jobs[0].output: output = "depth" needs an image']),
    ('[defaults]\noutput = "splat"\n\n[[jobs]]\nprompt = "a lion"\n',
     ['line 2: defaults.output: output = "splat" needs an image']),
])
def test_splat_and_depth_jobs_refuse_what_they_cannot_take(batchfile, tmod, tmp_path, text, expected):
    write_png(tmp_path / "statue.png")
    with pytest.raises(tmod("core.batch.source").BatchFileError) as info:
        batchfile.loads(text, "toml", base_dir=tmp_path)
    message = str(info.value)
    for part in expected:
        assert part in message, message


def test_a_job_may_switch_back_to_model_when_defaults_say_depth(load):
    plans = load('[defaults]\noutput = "depth"\n\n[[jobs]]\nimage = "statue.png"\n\n'
                 '[[jobs]]\nname = "lion"\nprompt = "a lion"\noutput = "model"\n').plans
    assert [p.job.steps[-1].task_type for p in plans] == ["image_to_depth", "text_to_model"]

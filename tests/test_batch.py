"""Headless batch runs: scripts/tripo_batch.py run by `blender -b` as a subprocess (exactly as a
pipeline calls it) against the emulator, plus the batch-file parser and QC in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import bpy
import pytest

from conftest import REPO, blender_command, write_png

SCRIPT = REPO / "scripts" / "tripo_batch.py"


def batch_command(batch: Path, out: Path | None, *extra: str) -> list[str]:
    args = [str(batch)] + (["--out", str(out)] if out else []) + list(extra)
    return [*blender_command(), "-b", "--factory-startup", "--online-mode", "--python-exit-code", "1",
            "--python", str(SCRIPT), "--", *args]


def batch_env(emulator) -> dict:
    return {**os.environ, "TRIPO_API_BASE": emulator.base_url, "TRIPO_API_KEY": emulator.api_key}


def run_batch(emulator, batch: Path, out: Path | None, *extra: str, timeout: float = 150):
    return subprocess.run(batch_command(batch, out, *extra), env=batch_env(emulator),
                          capture_output=True, text=True, timeout=timeout)


def traffic(emulator) -> list[dict]:
    """Every request the emulator received except the test's own control calls."""
    return [r for r in emulator.requests() if r.get("kind") != "control"]


def successful_creates(emulator) -> list[dict]:
    return [r for r in emulator.creates() if r["status"] == 200]


def body_key(request: dict) -> str:
    return request["path"] + json.dumps(request["json"], sort_keys=True)


def open_blend(path: Path) -> dict[str, list]:
    """Opens the run's .blend here and returns the Tripo objects by asset id (roots only)."""
    bpy.ops.wm.open_mainfile(filepath=str(path))
    roots: dict[str, list] = {}
    for obj in bpy.data.objects:
        meta = obj["tripo"].to_dict() if "tripo" in obj else None
        if meta and meta.get("batch_asset_id"):
            roots.setdefault(meta["batch_asset_id"], []).append(obj)
    return roots


BIG_BATCH = """
# 21 assets (12 from one template x variants) and 14 per-part jobs
[batch]
project = "T"
naming = "{project}_{type}_{name}_{generation}_{version}"
blend = "lib.blend"

[defaults]
type = "prop"
options = { model = "v3.1-20260211", face_limit = 3000 }

[qc]
max_non_manifold_edges = 1000

[[jobs]]
name = "crate_{style}_{material}"
prompt = "a {style} crate with {material} bands"
vars = { style = ["rustic", "sci-fi", "pirate"], material = ["iron", "brass"] }
variants = 2
post = { export = ["STL"] }

[[jobs]]
name = "cart"
prompt = "a toy cart with wheels"
variants = 2
seed = 40
options = { texture = false, pbr = false, generate_parts = true }
[jobs.post]
export_parts = ["STL"]
texture_parts = { prompt = "painted {part}", parts = ["body", "handle"] }

[[jobs]]
name = "lamp"
prompt = "a brass lamp"
post = { texture = "polished brass", lowpoly = 1500, export = ["STL", { format = "FBX", name = "game" }] }

[[jobs]]
name = "robot"
prompt = "a friendly robot"
post = { rig = "biped", animations = ["preset:idle", "preset:walk"] }

[[jobs]]
name = "idol"
image = "idol.png"

[[jobs]]
name = "qc_faces"
prompt = "a stone pillar"
qc = { max_faces = 100 }

[[jobs]]
name = "qc_texture"
prompt = "a clay pot"
options = { texture = false, pbr = false }
qc = { require_textures = true }

[[jobs]]
name = "blocked"
prompt = "something forbidden"

[[jobs]]
name = "broken"
prompt = "please failme"
"""


def test_batch_of_21_assets_with_variants_post_steps_qc_and_failures(emulator, tmp_path):
    emulator.configure(task_seconds=0.3)
    batch = tmp_path / "props.toml"
    batch.write_text(BIG_BATCH)
    write_png(tmp_path / "idol.png", rgb=(90, 60, 30))
    out = tmp_path / "out"
    result = run_batch(emulator, batch, out, "--concurrency", "8")
    assert result.returncode == 1, result.stdout + result.stderr  # two jobs failed

    report = json.loads((out / "report.json").read_text())
    assets = {a["asset_id"]: a for a in report["assets"]}
    assert len(assets) == 21
    crates = [a for a in assets if "_crate_" in a]
    assert len(crates) == 12 and "T_prop_crate_pirate_brass_gen06_v02" in assets
    status = Counter(a["status"] for a in assets.values())
    assert status == {"imported": 19, "failed": 2}, status
    assert "policy" in assets["T_prop_blocked_gen13_v01"]["error"].lower()
    assert report["totals"]["part_jobs"] == 14 and report["totals"]["part_jobs_failed"] == 0
    assert sorted(report["qc_failed"]) == ["T_prop_qc_faces_gen11_v01", "T_prop_qc_texture_gen12_v01"]
    assert assets["T_prop_qc_faces_gen11_v01"]["qc"]["failed"] == ["faces"]
    assert assets["T_prop_qc_texture_gen12_v01"]["qc"]["failed"] == ["textures"]
    assert report["totals"]["credits"] > 0

    # Deterministic layout, named by step and part.
    crate = out / "T_prop_crate_rustic_iron_gen01_v01"
    assert {"01_base.glb", "01_base.task.json", "01_base_rendered_image.webp", "06_export_full_stl.stl",
            "06_export_full_stl.task.json"} <= {p.name for p in crate.iterdir()}
    cart = {p.name for p in (out / "T_prop_cart_gen07_v01").iterdir()}
    part_names = assets["T_prop_cart_gen07_v01"]["part_names"]
    assert len(part_names) == 5
    for number, part in enumerate(part_names, start=1):
        assert f"08_export_part_stl__{number:03d}__{part}.stl" in cart
        assert f"08_export_part_stl__{number:03d}__{part}.task.json" in cart
    textured = sorted(n for n in cart if n.startswith("03_textured_part") and n.endswith(".glb"))
    assert [n.split("__")[2] for n in textured] == ["body.glb", "handle.glb"]
    lamp = {p.name for p in (out / "T_prop_lamp_gen08_v01").iterdir()}
    assert {"02_textured_full.glb", "05_lowpoly.glb", "06_export_full_stl.stl",
            "06_export_full_fbx_game.fbx"} <= lamp
    robot = {p.name for p in (out / "T_prop_robot_gen09_v01").iterdir()}
    assert {"07_rigged.glb", "09_animated.glb"} <= robot

    # A sidecar per task: request, task record, timings, credits (QC on the imported step).
    sidecar = json.loads((crate / "01_base.task.json").read_text())
    assert sidecar["request"]["route"] == "/v3/generation/text-to-model"
    assert sidecar["request"]["body"]["prompt"] == "a rustic crate with iron bands"
    assert sidecar["task"]["status"] == "success" and sidecar["task_id"] == sidecar["task"]["task_id"]
    assert sidecar["credits"]["consumed"] > 0 and sidecar["timings"]["seconds"] > 0
    assert sidecar["qc"]["passed"] is True
    variants = {json.loads((out / a / "01_base.task.json").read_text())["request"]["body"]["model_seed"]
                for a in crates}
    assert len(variants) == 12  # every variant has its own seed

    # What reached the emulator: every task created once, the failed one retried once, the
    # refused one (content policy) not retried.
    creates = emulator.creates()
    accepted = [r for r in creates if r["status"] == 200]
    assert len({body_key(r) for r in accepted}) == len(accepted) - 1  # only "failme" twice
    assert sum("failme" in json.dumps(r["json"]) for r in creates) == 2
    assert sum("forbidden" in json.dumps(r["json"]) for r in creates) == 1
    # Progress lines count up to the total, and the readable report names the failures.
    assert "[35/35]" in result.stdout
    text = (out / "report.txt").read_text()
    assert "FAILED: faces" in text and "content policy" in text.lower()
    assert (out / "contact_sheet.png").stat().st_size > 1000

    # The .blend holds each imported asset once, with its QC in the metadata.
    roots = open_blend(out / "lib.blend")
    assert sorted(roots) == sorted(a for a, v in assets.items() if v["status"] == "imported")
    assert all(len(objs) == 1 for objs in roots.values())
    meta = roots["T_prop_qc_faces_gen11_v01"][0]["tripo"].to_dict()
    assert meta["qc_passed"] is False and list(meta["qc_failed"]) == ["faces"]
    assert json.loads(meta["qc_json"])["checks"]["faces"]["limit"] == 100
    cart_root = roots["T_prop_cart_gen07_v01"][0]
    assert cart_root.type == "EMPTY" and len(cart_root.children) == 5


RESUME_BATCH = """
[batch]
blend = "resume.blend"
[defaults]
options = { face_limit = 2500 }
[qc]
max_non_manifold_edges = 1000

[[jobs]]
name = "barrel_{wood}"
prompt = "a {wood} barrel"
vars = { wood = ["oak", "pine", "ash", "elm", "fir", "yew"] }
post = { lowpoly = 1200 }

[[jobs]]
name = "cart"
prompt = "a toy cart with wheels"
options = { texture = false, pbr = false, generate_parts = true }
post = { export_parts = ["OBJ"] }
"""


def test_killed_run_resumes_without_paying_twice(emulator, tmp_path):
    emulator.configure(task_seconds=1.2)
    batch = tmp_path / "resume.toml"
    batch.write_text(RESUME_BATCH)
    out = tmp_path / "out"
    process = subprocess.Popen(batch_command(batch, out, "--concurrency", "3"), env=batch_env(emulator),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Kill it (SIGKILL: no chance to clean up) between two waves of creates, once some
        # tasks exist and some have finished.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(successful_creates(emulator)) < 5:
            time.sleep(0.05)
        count = len(successful_creates(emulator))
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 0.3:
            time.sleep(0.05)
            now_count = len(successful_creates(emulator))
            if now_count != count:
                count, quiet_since = now_count, time.monotonic()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    created_before = len(successful_creates(emulator))
    assert 5 <= created_before < 13, "the run should have been killed midway"
    assert (out / ".journal").is_dir()

    result = run_batch(emulator, batch, out, "--concurrency", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resum" in result.stdout

    accepted = successful_creates(emulator)
    assert len({body_key(r) for r in accepted}) == len(accepted), "a task was created twice"
    report = json.loads((out / "report.json").read_text())
    cart = next(a for a in report["assets"] if "cart" in a["asset_id"])
    # 6 barrels x 2 steps, the cart, one OBJ export per part: each exactly once.
    assert len(accepted) == 6 * 2 + 1 + len(cart["part_names"])
    assert all(a["status"] == "imported" for a in report["assets"])
    assert len(cart["part_jobs"]) == len(cart["part_names"]) == 5
    roots = open_blend(out / "resume.blend")
    assert sorted(roots) == sorted(a["asset_id"] for a in report["assets"])
    assert all(len(objs) == 1 for objs in roots.values())
    journal = [json.loads(p.read_text()) for p in (out / ".journal").glob("*.json")]
    assert len(journal) == 7 + 5 and {r["state"] for r in journal} == {"imported"}

    # A third run finds everything done: no request beyond the reads, nothing imported twice.
    creates_before = len(emulator.creates())
    again = run_batch(emulator, batch, out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(emulator.creates()) == creates_before
    assert all(len(objs) == 1 for objs in open_blend(out / "resume.blend").values())


def test_texture_parts_naming_a_part_the_model_lacks_is_reported_not_sent(emulator, tmp_path):
    emulator.configure(task_seconds=0.2)
    batch = tmp_path / "parts.toml"
    batch.write_text('[[jobs]]\nname = "cart"\nprompt = "a toy cart with wheels"\n'
                     'options = { texture = false, pbr = false, generate_parts = true }\n'
                     'post = { texture_parts = { prompt = "painted {part}", '
                     'parts = ["body", "../../etc/passwd"] } }\n')
    out = tmp_path / "out"
    result = run_batch(emulator, batch, out)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    asset = report["assets"][0]
    assert asset["status"] == "part_jobs_failed"
    failed = [p for p in asset["part_jobs"] if p["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["part"] == "../../etc/passwd"
    assert all(name in failed[0]["error"] for name in asset["part_names"])
    sent = [r["json"].get("part_names") for r in emulator.creates() if r["path"] == "/v3/models/texture"]
    assert sent == [["body"]], "only the real part was sent"
    assert "../../etc/passwd" in (out / "report.txt").read_text()


def test_dry_run_validates_estimates_and_sends_nothing(emulator, tmp_path):
    batch = tmp_path / "dry.toml"
    batch.write_text(BIG_BATCH)
    write_png(tmp_path / "idol.png")
    out = tmp_path / "out"
    result = run_batch(emulator, batch, out, "--dry-run", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Dry run: nothing was sent." in result.stdout
    assert "21 asset(s)" in result.stdout and "Total ≈" in result.stdout
    assert "per part" in result.stdout
    assert traffic(emulator) == []  # not even a balance query
    assert not out.exists()


def test_invalid_batch_file_is_refused_with_its_line_and_nothing_is_sent(emulator, tmp_path):
    batch = tmp_path / "bad.toml"
    batch.write_text('[[jobs]]\nprompt = "a lamp"\n\n[[jobs]]\nprompt = "a {colour} chair"\n'
                     'options = { face_limit = 10 }\n')
    result = run_batch(emulator, batch, tmp_path / "out", timeout=60)
    assert result.returncode == 2
    assert "line 5: jobs[1].prompt: unknown template field {colour}" in result.stderr
    assert traffic(emulator) == []


@pytest.mark.parametrize("fmt, text, expected", [
    ("toml", '[[jobs]]\nprompt = "a lamp"\nvariants = "two"\n',
     ["line 3: jobs[0].variants: must be a number of variants"]),
    ("toml", '[batch]\nproject = "X"\n\n[[jobs]]\nprompt = "a lamp"\nsize = 3\n',
     ["line 6: jobs[0].size: unknown key 'size'"]),
    ("toml", '[[jobs]]\nprompt = "a lamp"\n[jobs.options]\nface_limit = 10\n',
     ["line 4: jobs[0].options.face_limit: face_limit must be between 500 and 500000"]),
    ("toml", '[defaults.options]\nface_limt = 900\n\n[[jobs]]\nprompt = "a lamp"\n',
     ["line 2: defaults.options.face_limt: 'face_limt' is not an option of Text to model"]),
    ("toml", '[[jobs]]\nprompt = "a lamp"\npost = { lowpoly = 800, export = ["STL", "DOCX"] }\n',
     ["line 3: jobs[0].post.export[1]: unknown export format 'DOCX'"]),
    ("toml", '[[jobs]]\nprompt = "a lamp"\n[jobs.post]\nexport_parts = "STL"\n',
     ["line 4: jobs[0].post.export_parts: export_parts needs parts"]),
    ("toml", '[[jobs]]\nprompt = "a lamp\n', ["line 2: not valid TOML"]),
    ("toml", '[batch]\nproject = "X"\n', ["jobs: the batch file lists no jobs"]),
    ("toml", '[[jobs]]\nname = "same"\nprompt = "a lamp"\n[[jobs]]\nname = "same"\nprompt = "a cup"\n',
     ["line 5: jobs[1].name: two assets get the folder name 'same_v01'"]),
    ("toml", '[[jobs]]\nprompt = "a lamp"\npost.rig = "octopus"\n',
     ["line 3: jobs[0].post.rig: rig_type must be"]),
    ("json", '{\n  "jobs": [\n    {"prompt": "a lamp"},\n    {"prompt": "a cup",\n'
             '     "options": {"texture": "maybe"}}\n  ]\n}\n',
     ["line 5: jobs[1].options.texture: texture must be true or false"]),
    ("json", '{"jobs": [{"prompt": "a lamp",}]}', ["line 1: not valid JSON"]),
    ("toml", '[[jobs]]\nimage = "missing.png"\n', ["line 2: jobs[0].image:", "missing.png"]),
])
def test_batch_file_errors_name_the_line_and_key(tmod, tmp_path, fmt, text, expected):
    batchfile = tmod("core.batch.batchfile")
    path = tmp_path / f"batch.{fmt}"
    path.write_text(text)
    with pytest.raises(tmod("core.batch.source").BatchFileError) as info:
        batchfile.load(path)
    message = str(info.value)
    for part in expected:
        assert part in message, message


def test_plans_are_deterministic_and_named_safely(tmod, tmp_path):
    batchfile = tmod("core.batch.batchfile")
    text = ('[batch]\nnaming = "{project}_{type}_{name}_{generation}_{version}"\nproject = "Ünïcode/Proj"\n'
            '[[jobs]]\nname = "con"\nprompt = "a {m} chair"\nvars = { m = ["oak", "steel: 1/2"] }\n'
            'variants = 2\n')
    (tmp_path / "a.toml").write_text(text)
    first, second = batchfile.load(tmp_path / "a.toml"), batchfile.load(tmp_path / "a.toml")
    assert [p.job_id for p in first.plans] == [p.job_id for p in second.plans]
    assert len({p.job_id for p in first.plans}) == 4
    names = [p.asset_id for p in first.plans]
    assert names[0] == "Unicode_Proj_prop_con_oak_gen01_v01"
    assert names[3] == "Unicode_Proj_prop_con_steel_1_2_gen02_v02"
    safe_name = tmod("core.files").safe_name
    assert all(safe_name(n) == n for n in names)
    assert safe_name("CON") == "_CON" and safe_name("../..") == "asset"
    seeds = [p.job.steps[0].params["model_seed"] for p in first.plans]
    assert seeds[1] == seeds[0] + 1 and len(set(seeds)) == 4
    # Editing one asset's request changes that asset's job only.
    (tmp_path / "a.toml").write_text(text.replace('"oak"', '"ash"'))
    third = batchfile.load(tmp_path / "a.toml")
    assert [p.job_id for p in third.plans][2:] == [p.job_id for p in first.plans][2:]
    assert [p.job_id for p in third.plans][:2] != [p.job_id for p in first.plans][:2]
    # The same batch as JSON plans the same jobs.
    data = {"batch": {"naming": "{project}_{type}_{name}_{generation}_{version}",
                      "project": "Ünïcode/Proj"},
            "jobs": [{"name": "con", "prompt": "a {m} chair", "vars": {"m": ["oak", "steel: 1/2"]},
                      "variants": 2}]}
    (tmp_path / "a.json").write_text(json.dumps(data))
    assert [p.job_id for p in batchfile.load(tmp_path / "a.json").plans] == [p.job_id for p in first.plans]


def _mesh_object(name, verts, faces, edges=()):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, list(edges), faces)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.collection.objects.link(obj)
    return obj


CUBE_VERTS = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
CUBE_FACES = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]


def test_qc_checks_and_never_raises(tmod, tmp_path):
    qc = tmod("blender.qc")
    cube = _mesh_object("cube", CUBE_VERTS, CUBE_FACES)
    good = qc.check_asset([cube], max_faces=10, max_vertices=10)
    assert good["passed"], good
    assert good["stats"]["faces"] == 6 and good["stats"]["size"] == [1.0, 1.0, 1.0]

    over = qc.check_asset([cube], max_faces=5, max_size=0.5)
    assert over["failed"] == ["faces", "bounding_box"]

    plane = _mesh_object("plane", [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (5, 5, 5)], [(0, 1, 2, 3)])
    holes = qc.check_asset([plane])
    assert set(holes["failed"]) == {"non_manifold_edges", "loose_geometry"}
    assert holes["checks"]["non_manifold_edges"]["value"] == 4
    assert holes["checks"]["loose_geometry"]["value"] == 1

    material = bpy.data.materials.new("painted")
    if material.node_tree is None:  # Blender < 5.0 (5.0 deprecates use_nodes: always on)
        material.use_nodes = True
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    image = bpy.data.images.new("gone", 4, 4)
    image.source = "FILE"
    image.filepath = str(tmp_path / "gone.png")
    node.image = image
    cube.data.materials.append(material)
    missing = qc.check_asset([cube], require_textures=True)
    assert missing["failed"] == ["textures"] and "missing file" in missing["checks"]["textures"]["message"]
    bare = _mesh_object("bare", CUBE_VERTS, CUBE_FACES)
    assert qc.check_asset([bare], require_textures=True)["failed"] == ["textures"]
    assert qc.check_asset([bare], min_parts=2)["failed"] == ["parts"]

    empty = _mesh_object("empty", [], [])
    result = qc.check_asset([empty, None, bpy.data.objects.new("nothing", None)])
    assert not result["passed"] and "bounding_box" in result["failed"]
    assert qc.check_asset([])["failed"] == ["meshes"]


def test_example_batch_files_plan(tmod):
    batchfile = tmod("core.batch.batchfile")
    demo = batchfile.load(REPO / "examples" / "demo_batch.toml")
    assert [p.asset_id for p in demo.plans] == [
        "DEMO_prop_crate_rustic_gen01_v01", "DEMO_prop_crate_sci-fi_gen02_v01",
        "DEMO_prop_cart_gen03_v01", "DEMO_prop_cart_gen03_v02"]
    assert demo.blend == "demo.blend"
    reference = batchfile.load(REPO / "examples" / "batch_reference.toml")
    kinds = {s.task_type for p in reference.plans for s in p.job.steps}
    assert {"text_to_model", "text_to_image", "image_to_model", "texture_model", "mesh_segmentation",
            "highpoly_to_lowpoly", "animate_rig", "animate_retarget", "convert_model"} <= kinds
    assert {w.kind for p in reference.plans for w in p.part_work} == {"texture", "export"}


IMAGE_OUTPUTS_BATCH = """
[batch]
project = "IMG"
naming = "{project}_{name}"
blend = "images.blend"

[defaults]
options = { model = "v3.1-20260211", face_limit = 3000 }   # for the models; splat/depth leave them out

[qc]
max_non_manifold_edges = 1000

[[jobs]]
name = "bust"
image = "bust.png"
output = "splat"
options = { model_seed = 9 }

[[jobs]]
name = "hall"
image = "hall.png"
output = "depth"
options = { kind = "color", process_res = 256 }

[[jobs]]
name = "idol"
image = "bust.png"
"""


def test_batch_image_jobs_make_splats_and_depth_maps(emulator, tmp_path):
    emulator.configure(task_seconds=0.2)
    batch = tmp_path / "images.toml"
    batch.write_text(IMAGE_OUTPUTS_BATCH)
    write_png(tmp_path / "bust.png", rgb=(150, 90, 60))
    write_png(tmp_path / "hall.png", rgb=(60, 90, 150))
    out = tmp_path / "out"
    result = run_batch(emulator, batch, out)
    assert result.returncode == 0, result.stdout + result.stderr

    # Each job sent as its own task type, with its own options only.
    creates = {r["path"]: r["json"] for r in successful_creates(emulator)}
    assert set(creates) == {"/v3/generation/image-to-splat", "/v3/generation/image-to-depth",
                            "/v3/generation/image-to-model"}
    splat_body = creates["/v3/generation/image-to-splat"]
    assert set(splat_body) == {"input", "model_seed"} and splat_body["model_seed"] == 9
    depth_body = creates["/v3/generation/image-to-depth"]
    assert set(depth_body) == {"input", "kind", "process_res"}
    assert (depth_body["kind"], depth_body["process_res"]) == ("color", 256)

    # The report: the output, the task, QC fit for a point cloud / a plane, the estimate.
    report = json.loads((out / "report.json").read_text())
    assets = {a["asset_id"]: a for a in report["assets"]}
    bust, hall, idol = assets["IMG_bust"], assets["IMG_hall"], assets["IMG_idol"]
    assert [a["status"] for a in (bust, hall, idol)] == ["imported"] * 3
    assert (bust["output"], hall["output"], idol["output"]) == ("splat", "depth", "model")
    assert [t["type"] for t in bust["tasks"]] == ["image_to_splat"]
    assert [t["type"] for t in hall["tasks"]] == ["image_to_depth"]
    assert bust["qc"]["passed"] and set(bust["qc"]["checks"]) == {"points", "bounding_box"}
    assert bust["qc"]["stats"]["points"] == 512
    assert hall["qc"]["passed"] and set(hall["qc"]["checks"]) == {"depth_image", "bounding_box"}
    assert hall["qc"]["stats"]["depth_image_size"] == [256, 256]  # process_res
    assert "faces" in idol["qc"]["checks"]  # a model keeps the mesh checks
    assert bust["estimated_credits"] == 10 and hall["estimated_credits"] == 10
    assert bust["credits"] > 0 and hall["credits"] > 0
    assert {"01_base.ply", "01_base.task.json"} <= set(bust["files"])
    assert {"01_base_depth_image.png", "01_base.task.json"} <= set(hall["files"])
    sidecar = json.loads((out / "IMG_hall" / "01_base.task.json").read_text())
    assert sidecar["request"]["route"] == "/v3/generation/image-to-depth"
    assert sidecar["meta"]["kind"] == "depth" and sidecar["qc"]["passed"]
    text = (out / "report.txt").read_text()
    assert any(line.startswith("IMG_bust") and " splat " in line for line in text.splitlines()), text
    assert any(line.startswith("IMG_hall") and " depth " in line for line in text.splitlines()), text

    # The contact sheet shows the depth map itself; a splat has no picture (a grey cell).
    cells = {c["asset_id"]: c for c in report["contact_sheet"]["cells"]}
    assert cells["IMG_hall"]["preview"] == "01_base_depth_image.png" and cells["IMG_hall"]["shown"]
    assert cells["IMG_bust"]["preview"] is None and cells["IMG_bust"]["label"].endswith("QC ok")

    # The .blend: a point cloud and a displaced plane, landed by the panel's own code, with the
    # task's metadata and the batch's QC as custom properties, marked as assets.
    roots = open_blend(out / "images.blend")
    (cloud,), (plane,) = roots["IMG_bust"], roots["IMG_hall"]
    cloud_meta, plane_meta = cloud["tripo"].to_dict(), plane["tripo"].to_dict()
    assert cloud.type == "MESH" and len(cloud.data.vertices) > 0 and not cloud.data.polygons
    assert any(m.type == "NODES" for m in cloud.modifiers)
    assert cloud_meta["role"] == "splat" and cloud_meta["task_type"] == "image_to_splat"
    assert cloud_meta["task_id"] == bust["tasks"][0]["task_id"]
    assert cloud_meta["point_count"] == len(cloud.data.vertices)
    assert cloud_meta["source_file"] == str(out / "IMG_bust" / "01_base.ply")
    assert cloud_meta["qc_passed"] is True and cloud_meta["images"] == ["bust.png"]
    image = plane.modifiers["Depth"].texture.image
    assert image.packed_file is None and tuple(image.size) == (256, 256)  # loaded from the kept file
    assert tuple(round(v, 3) for v in plane.dimensions[:2]) == (1.0, 1.0)
    assert plane_meta["role"] == "depth" and plane_meta["task_id"] == hall["tasks"][0]["task_id"]
    assert plane_meta["depth_kind"] == "color" and plane_meta["depth_image"] == image.name
    assert plane_meta["batch_asset_id"] == "IMG_hall" and plane_meta["qc_passed"] is True
    assert cloud.asset_data is not None and plane.asset_data is not None
    assert "qc:passed" in {t.name for t in plane.asset_data.tags}

    # A rerun finds both done: nothing is sent or imported again.
    creates_before = len(emulator.creates())
    again = run_batch(emulator, batch, out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(emulator.creates()) == creates_before
    assert all(len(objs) == 1 for objs in open_blend(out / "images.blend").values())

"""The protocol core without a server: request validation, chain rules, local files, task
parsing, error mapping, costs, base URL and proxy rules, read retries.

The fast tier: plain CPython without Blender; `tmod("core.protocol.records")` is
`tripo_blender.core.protocol.records` imported from the repository (tests/fast/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest


from sample_files import write_glb, write_jpeg_header, write_png, write_webp_header

TASK_ID = "3f2a1b4c-0000-4000-8000-000000000001"
OTHER_ID = "3f2a1b4c-0000-4000-8000-000000000002"


def protocol_module(module: str, fixture_name: str = ""):
    """A fixture that is the module ``core.protocol.<module>``, named after it unless named."""
    return pytest.fixture(lambda tmod: tmod(f"core.protocol.{module}"), name=fixture_name or module)


vocabulary, records, inputs, request_models, chains = (
    protocol_module(name) for name in ("vocabulary", "records", "inputs", "request_models", "chains"))
E = protocol_module("errors", "E")


def expect_invalid(request_models, E, task_type, params, field, *fragments):
    with pytest.raises(E.ValidationError) as info:
        request_models.build_request(task_type, **params)
    exc = info.value
    assert isinstance(exc, ValueError)
    assert type(exc).__module__ == E.__name__  # ours, never pydantic's
    text = exc.user_message()
    if field is not None:
        assert exc.field == field, (exc.field, text)
    for fragment in fragments:
        assert fragment.lower() in text.lower(), text
    return exc


# --------------------------------------------------------------------------- good requests

GOOD = [
    ("text_to_model", {"prompt": "a red chair"},
     {"prompt": "a red chair", "model": "v3.1-20260211"}),
    ("text_to_model", {"prompt": "a chair", "negative_prompt": "blurry", "model": "v3.0-20250812",
                       "face_limit": 500000, "texture": True, "pbr": True, "texture_quality": "detailed",
                       "geometry_quality": "detailed", "image_seed": 1, "model_seed": 2, "texture_seed": 3,
                       "auto_size": True, "quad": True, "compress": "geometry", "smart_low_poly": True,
                       "export_uv": False},
     {"face_limit": 500000, "quad": True, "compress": "geometry", "export_uv": False}),
    ("text_to_model", {"prompt": "parts", "generate_parts": True, "texture": False, "pbr": False},
     {"generate_parts": True, "texture": False, "pbr": False}),
    ("text_to_model", {"prompt": "p1", "model": "P1-20260311", "face_limit": 48, "quad": False},
     {"model": "P1-20260311", "face_limit": 48}),
    ("image_to_model", {"input": TASK_ID, "texture_alignment": "geometry", "orientation": "align_image",
                        "enable_image_autofix": True},
     {"input": TASK_ID, "texture_alignment": "geometry", "orientation": "align_image"}),
    ("image_to_model", {"input": "file_abc-123"}, {"input": "file_abc-123"}),
    ("image_to_model", {"input": "https://example.com/cat.png"}, {"input": "https://example.com/cat.png"}),
    ("multiview_to_model", {"inputs": ["file_front", None, "file_back", None]},
     {"inputs": ["file_front", None, "file_back", None]}),
    ("multiview_to_model", {"inputs": {"front": "file_f", "right": "https://x.org/r.webp"}},
     {"inputs": ["file_f", None, None, "https://x.org/r.webp"]}),
    ("multiview_to_model", {"input": TASK_ID}, {"inputs": [{"task_id": TASK_ID}]}),
    ("multiview_to_model", {"inputs": [{"task_id": TASK_ID}]}, {"inputs": [{"task_id": TASK_ID}]}),
    ("text_to_image", {"prompt": "a castle", "negative_prompt": "fog"}, {"prompt": "a castle"}),
    ("generate_image", {"prompt": "make it blue", "input": TASK_ID}, {"input": TASK_ID}),
    ("generate_multiview_image", {"input": "file_img"}, {"input": "file_img"}),
    ("generate_image", {"input": "file_img", "template": "t-pose"},
     {"input": "file_img", "template": "t-pose", "t_pose": False, "sketch_to_render": False}),
    ("generate_image", {"prompt": "a knight", "inputs": ["file_a", TASK_ID], "t_pose": True},
     {"inputs": ["file_a", TASK_ID], "t_pose": True}),
    ("image_to_splat", {"input": "https://example.com/a.png", "model_seed": 3}, {"model_seed": 3}),
    ("image_to_depth", {"input": TASK_ID}, {"kind": "gray", "process_res": 504}),
    ("image_to_depth", {"input": TASK_ID, "kind": "color", "process_res": 2016}, {"kind": "color"}),
    ("texture_model", {"input": TASK_ID, "model": "v3.5-20260815", "texture_quality": "fast",
                       "delight": True}, {"texture_quality": "fast", "delight": True}),
    ("text_to_model", {"prompt": "p2", "model": "P2-20260801"}, {"model": "P2-20260801"}),
    ("highpoly_to_lowpoly", {"input": TASK_ID, "model": "P-v3.0-20260909", "smart_uv": True},
     {"model": "v3.0", "smart_uv": True, "quad": False, "bake": True}),
    ("animate_rig", {"input": TASK_ID},
     {"model": "v3.0-20260909", "rig_type": "biped", "spec": "tripo", "out_format": "glb"}),
    ("edit_multiview_image", {"input": TASK_ID, "prompts": [{"view": "front", "prompt": "add a hat"}]},
     {"input": TASK_ID, "prompts": [{"view": "front", "prompt": "add a hat"}]}),
    ("edit_multiview_image", {"input": TASK_ID, "prompts": {"back": "a tail", "front": "a hat", "left": " "}},
     {"prompts": [{"view": "front", "prompt": "a hat"}, {"view": "back", "prompt": "a tail"}]}),
    ("texture_model", {"input": TASK_ID, "model": "v3.5-20260815", "texture_quality": "detailed",
                       "texture_alignment": "geometry", "part_names": ["wheel"], "bake": False,
                       "compress": "geometry", "model_seed": 4, "texture_seed": 5,
                       "texture_prompt": {"text": "rusty", "style_image": "file_style"}},
     {"texture_prompt": {"text": "rusty", "style_image": "file_style"}, "part_names": ["wheel"]}),
    ("mesh_segmentation", {"input": TASK_ID}, {"input": TASK_ID}),
    ("mesh_segmentation", {"input": TASK_ID, "model": "v2.0-20260430", "segmentation_granularity": "detailed",
                           "split_by_connectivity": True, "ref_image": "file_ref"},
     {"segmentation_granularity": "detailed", "ref_image": "file_ref"}),
    ("mesh_completion", {"input": TASK_ID, "part_names": ["arm"], "completion_mode": "quick_cap"},
     {"completion_mode": "quick_cap"}),
    ("highpoly_to_lowpoly", {"input": TASK_ID, "face_limit": 20000}, {"face_limit": 20000}),
    ("highpoly_to_lowpoly", {"input": TASK_ID, "face_limit": 10000, "quad": True, "bake": True,
                             "part_names": ["a"], "model": "v3.0", "smart_uv": True},
     {"smart_uv": True, "model": "v3.0"}),
    ("mesh_uv", {"input": TASK_ID}, {"input": TASK_ID}),
    ("animate_prerigcheck", {"input": TASK_ID}, {"input": TASK_ID}),
    ("animate_rig", {"input": TASK_ID, "rig_type": "quadruped", "spec": "mixamo", "out_format": "fbx"},
     {"rig_type": "quadruped", "spec": "mixamo", "out_format": "fbx"}),
    ("animate_rig", {"input": TASK_ID, "model": "v2.5-20260210", "spec": "unity"}, {"spec": "unity"}),
    ("animate_retarget", {"input": TASK_ID, "animation": "preset:walk"}, {"animation": "preset:walk"}),
    ("animate_retarget", {"input": TASK_ID, "animations": ["preset:idle", "preset:run", "preset:jump",
                                                            "preset:biped:turn", "preset:fall"],
                          "out_format": "fbx", "export_with_geometry": False, "animate_in_place": True},
     {"animate_in_place": True}),
    ("convert_model", {"input": TASK_ID, "format": "fbx", "fbx_preset": "mixamo",
                       "export_orientation": "-y", "texture_format": "png"},
     {"format": "FBX", "fbx_preset": "mixamo", "texture_format": "PNG"}),
    ("convert_model", {"input": TASK_ID, "format": "STL", "quad": True, "force_symmetry": True,
                       "face_limit": 1000, "flatten_bottom": True, "flatten_bottom_threshold": 0.02,
                       "texture_size": 2048, "scale_factor": 0.5, "pivot_to_center_bottom": True,
                       "with_animation": False, "pack_uv": True, "bake": False, "part_names": ["x"],
                       "export_vertex_colors": True, "animate_in_place": True},
     {"flatten_bottom_threshold": 0.02, "scale_factor": 0.5}),
    ("import_model", {"input": "file_model"}, {"input": "file_model"}),
]


@pytest.mark.parametrize("task_type,params,expected", GOOD,
                         ids=[f"{g[0]}-{i}" for i, g in enumerate(GOOD)])
def test_good_requests_build_and_serialise(request_models, task_type, params, expected):
    request = request_models.build_request(task_type, **params)
    assert request.task_type == task_type
    assert request.route.startswith("/v3/")
    body = request.to_body()
    for key, value in expected.items():
        assert body[key] == value, (key, body)
    assert all(v is not None for v in body.values())  # unset options are not sent


def test_every_live_type_has_a_request_and_route(request_models):
    expected_routes = {
        "text_to_model": "/v3/generation/text-to-model",
        "image_to_model": "/v3/generation/image-to-model",
        "multiview_to_model": "/v3/generation/multiview-to-model",
        "text_to_image": "/v3/generation/text-to-image",
        "generate_image": "/v3/generation/image-to-image",
        "generate_multiview_image": "/v3/generation/image-to-multiview",
        "edit_multiview_image": "/v3/generation/edit-multiview",
        "texture_model": "/v3/models/texture",
        "convert_model": "/v3/models/convert",
        "import_model": "/v3/models/import",
        "animate_prerigcheck": "/v3/animations/rig-check",
        "animate_rig": "/v3/animations/rig",
        "animate_retarget": "/v3/animations/retarget",
        "mesh_segmentation": "/v3/mesh/segment",
        "mesh_completion": "/v3/mesh/complete",
        "highpoly_to_lowpoly": "/v3/mesh/decimate",
        "mesh_uv": "/v3/mesh/uv",
        "image_to_splat": "/v3/generation/image-to-splat",
        "image_to_depth": "/v3/generation/image-to-depth",
    }
    assert request_models.ROUTES == expected_routes
    tested = {g[0] for g in GOOD}
    assert tested == set(expected_routes)


def test_generation_model_defaults_to_current_version(request_models, vocabulary):
    body = request_models.build_request("image_to_model", input=TASK_ID, model=None).to_body()
    assert body["model"] == "v3.1-20260211" == vocabulary.DEFAULT_GENERATION_MODEL


def test_p1_drops_refused_options_that_are_off(request_models):
    body = request_models.build_request("text_to_model", prompt="x", model="P1-20260311", quad=False,
                                        smart_low_poly=False, geometry_quality="standard").to_body()
    assert not {"quad", "smart_low_poly", "geometry_quality"} & set(body)


# --------------------------------------------------------------------------- bad requests

BAD = [
    ("text_to_model", {}, "prompt", ["prompt is required"]),
    ("text_to_model", {"prompt": "   "}, "prompt", ["prompt is required"]),
    ("text_to_model", {"prompt": "x" * 1025}, "prompt", ["1025", "1024"]),
    ("text_to_model", {"prompt": "x", "negative_prompt": "n" * 256}, "negative_prompt", ["255"]),
    ("text_to_model", {"prompt": "x", "model": "v9.9-20990101"}, "model", ["not a known", "v3.1-20260211"]),
    ("text_to_model", {"prompt": "x", "model_version": "v3.0-20250812"}, "model_version",
     ["not an option", "model"]),
    ("text_to_model", {"prompt": "x", "face_limit": 499}, "face_limit", ["500", "500000", "499"]),
    ("text_to_model", {"prompt": "x", "face_limit": 500001}, "face_limit", ["between 500 and 500000"]),
    ("text_to_model", {"prompt": "x", "model": "P1-20260311", "face_limit": 47}, "face_limit",
     ["48", "20000", "P1"]),
    ("text_to_model", {"prompt": "x", "model": "P1-20260311", "face_limit": 20001}, "face_limit", ["20000"]),
    ("text_to_model", {"prompt": "x", "face_limit": "many"}, "face_limit", ["whole number"]),
    ("text_to_model", {"prompt": "x", "texture_quality": "ultra"}, "texture_quality",
     ["'standard' or 'detailed'", "ultra"]),
    ("text_to_model", {"prompt": "x", "geometry_quality": "high"}, "geometry_quality", ["standard"]),
    ("text_to_model", {"prompt": "x", "compress": "draco"}, "compress", ["geometry"]),
    ("text_to_model", {"prompt": "x", "model_seed": -1}, "model_seed", ["at least 0"]),
    ("text_to_model", {"prompt": "x", "generate_parts": True}, "generate_parts", ["texture and pbr"]),
    ("text_to_model", {"prompt": "x", "generate_parts": True, "texture": False}, "generate_parts",
     ["pbr"]),
    ("text_to_model", {"prompt": "x", "generate_parts": True, "texture": False, "pbr": False, "quad": True},
     "generate_parts", ["quad"]),
    ("text_to_model", {"prompt": "x", "model": "P1-20260311", "quad": True}, "quad", ["P1"]),
    ("text_to_model", {"prompt": "x", "model": "P1-20260311", "smart_low_poly": True}, "smart_low_poly",
     ["P1"]),
    ("text_to_model", {"prompt": "x", "model": "P1-20260311", "generate_parts": True, "texture": False,
                       "pbr": False}, "generate_parts", ["P1"]),
    ("text_to_model", {"prompt": "x", "model": "P1-20260311", "geometry_quality": "detailed"},
     "geometry_quality", ["P1"]),
    ("image_to_model", {}, "input", ["input is required"]),
    ("image_to_model", {"input": "cat.png"}, "input", ["relative paths"]),
    ("image_to_model", {"input": "//textures/cat.png"}, "input", ["Blender-relative"]),
    ("image_to_model", {"input": "ftp://host/cat.png"}, "input", ["ftp://", "not supported"]),
    ("image_to_model", {"input": TASK_ID, "texture_alignment": "mesh"}, "texture_alignment",
     ["original_image", "geometry"]),
    ("image_to_model", {"input": TASK_ID, "orientation": "up"}, "orientation", ["align_image"]),
    ("image_to_model", {"input": TASK_ID, "prompt": "x"}, "prompt", ["not an option"]),
    ("multiview_to_model", {}, "inputs", ["inputs is required"]),
    ("multiview_to_model", {"inputs": ["file_a", "file_b"]}, "inputs", ["exactly 4", "got 2"]),
    ("multiview_to_model", {"inputs": [None, "file_b", None, None]}, "inputs[0]", ["front view is required"]),
    ("multiview_to_model", {"inputs": ["file_a", None, None, None]}, "inputs", ["at least two"]),
    ("multiview_to_model", {"inputs": {"front": "file_a", "top": "file_b"}}, "inputs", ["top"]),
    ("multiview_to_model", {"inputs": ["file_a", "side.png", None, None]}, "inputs[1] (left view)",
     ["relative"]),
    ("multiview_to_model", {"inputs": ["file_a", "file_b", None, None], "input": TASK_ID}, "inputs",
     ["not both"]),
    ("multiview_to_model", {"input": "file_a"}, "input", ["task id", "multiview image task"]),
    ("text_to_image", {"prompt": ""}, "prompt", ["required"]),
    ("generate_image", {"prompt": "x"}, "input", ["required"]),
    ("generate_multiview_image", {}, "input", ["required"]),
    ("edit_multiview_image", {"input": TASK_ID}, "prompts", ["required"]),
    ("generate_image", {"prompt": "x"}, "input", ["required"]),
    ("generate_image", {"input": TASK_ID}, "prompt", ["required"]),
    ("generate_image", {"prompt": "x", "input": TASK_ID, "inputs": [TASK_ID]}, "inputs", ["not both"]),
    ("image_to_depth", {"input": TASK_ID, "process_res": 100}, "process_res", ["126", "2016"]),
    ("image_to_depth", {"input": TASK_ID, "kind": "rgb"}, "kind", ["gray"]),
    ("texture_model", {"input": TASK_ID, "texture_quality": "fast"}, "texture_quality", ["v3.5"]),
    ("texture_model", {"input": TASK_ID, "delight": True}, "delight", ["v3.5"]),
    ("edit_multiview_image", {"prompts": {"front": "x"}}, "input", ["required"]),
    ("edit_multiview_image", {"input": TASK_ID, "prompts": []}, "prompts", ["at least one view"]),
    ("edit_multiview_image", {"input": TASK_ID, "prompts": {"top": "x"}}, "prompts", ["top"]),
    ("edit_multiview_image", {"input": TASK_ID, "prompts": [{"view": "front", "prompt": "a"},
                                                            {"view": "front", "prompt": "b"}]},
     "prompts", ["front view more than once"]),
    ("edit_multiview_image", {"input": TASK_ID, "prompt": "x", "prompts": {"front": "x"}}, "prompt",
     ["not an option"]),
    ("texture_model", {}, "input", ["required"]),
    ("texture_model", {"input": TASK_ID, "model": "v9"}, "model", ["v3.5-20260815"]),
    ("texture_model", {"input": TASK_ID, "texture": False, "pbr": False}, "texture", ["nothing to texture"]),
    ("texture_model", {"input": TASK_ID, "texture_prompt": {}}, "texture_prompt", ["text, an image"]),
    ("texture_model", {"input": TASK_ID, "texture_prompt": {"words": "x"}}, "texture_prompt.words",
     ["not an option"]),
    ("texture_model", {"input": TASK_ID, "texture_prompt": {"image": "img.png"}}, "texture_prompt.image",
     ["relative"]),
    ("texture_model", {"input": TASK_ID, "part_names": []}, "part_names", ["empty"]),
    ("texture_model", {"input": TASK_ID, "part_names": ["a", "a"]}, "part_names", ["twice"]),
    ("mesh_segmentation", {"input": TASK_ID, "segmentation_granularity": "simple"},
     "segmentation_granularity", ["v2.0-20260430"]),
    ("mesh_segmentation", {"input": TASK_ID, "split_by_connectivity": True}, "split_by_connectivity",
     ["v2.0-20260430"]),
    ("mesh_segmentation", {"input": TASK_ID, "ref_image": "file_x", "model": "v1.0-20250506"}, "ref_image",
     ["v2.0"]),
    ("mesh_segmentation", {"input": TASK_ID, "model": "v2.0-20260430", "segmentation_granularity": "max"},
     "segmentation_granularity", ["simple", "balanced", "detailed"]),
    ("mesh_segmentation", {"input": TASK_ID, "model": "v3"}, "model", ["v1.0-20250506"]),
    ("mesh_completion", {"input": "file_part"}, "input", ["segmentation task"]),
    ("mesh_completion", {"input": TASK_ID, "completion_mode": "magic"}, "completion_mode",
     ["ai_completion", "quick_cap"]),
    ("highpoly_to_lowpoly", {"input": TASK_ID, "face_limit": 20001}, "face_limit", ["500 and 20000"]),
    ("highpoly_to_lowpoly", {"input": TASK_ID, "face_limit": 499}, "face_limit", ["500"]),
    ("highpoly_to_lowpoly", {"input": TASK_ID, "face_limit": 10001, "quad": True}, "face_limit",
     ["10000", "quad"]),
    ("highpoly_to_lowpoly", {"input": TASK_ID, "smart_uv": True}, "smart_uv", ["v3.0"]),
    ("highpoly_to_lowpoly", {"input": TASK_ID, "model": "v2.0", "smart_uv": True}, "smart_uv", ["v3.0"]),
    ("highpoly_to_lowpoly", {"input": TASK_ID, "model": "v4.0"}, "model", ["v1.0, v2.0, v3.0"]),
    ("mesh_uv", {"input": TASK_ID, "quad": True}, "quad", ["not an option"]),
    ("animate_prerigcheck", {}, "input", ["required"]),
    ("animate_rig", {"input": TASK_ID, "rig_type": "centaur"}, "rig_type", ["biped", "quadruped"]),
    ("animate_rig", {"input": TASK_ID, "spec": "blender"}, "spec", ["mixamo"]),
    ("animate_rig", {"input": TASK_ID, "spec": "unreal", "model": "v1.0-20240301"}, "spec", ["v2.5-20260210", "v3.0-20260909"]),
    ("animate_rig", {"input": TASK_ID, "spec": "vrm", "model": "v1.0-20240301"}, "spec", ["v2.5"]),
    ("animate_rig", {"input": TASK_ID, "model": "v2.0"}, "model", ["v1.0-20240301"]),
    ("animate_rig", {"input": TASK_ID, "out_format": "obj"}, "out_format", ["glb", "fbx"]),
    ("animate_retarget", {"input": TASK_ID}, "animation", ["preset:walk"]),
    ("animate_retarget", {"input": TASK_ID, "animation": "preset:moonwalk"}, "animation",
     ["preset:moonwalk", "not a known"]),
    ("animate_retarget", {"input": TASK_ID, "animations": [f"preset:{n}" for n in
                                                           ("idle", "walk", "run", "dive", "climb", "jump")]},
     "animations", ["6", "at most 5"]),
    ("animate_retarget", {"input": TASK_ID, "animation": "preset:walk", "animations": ["preset:run"]},
     "animations", ["not both"]),
    ("animate_retarget", {"input": TASK_ID, "animations": ["preset:run", "preset:run"]}, "animations",
     ["twice"]),
    ("animate_retarget", {"input": "file_rigged", "animation": "preset:walk"}, "input", ["rig task"]),
    ("convert_model", {"input": TASK_ID}, "format", ["format is required"]),
    ("convert_model", {"input": TASK_ID, "format": "BLEND"}, "format", ["GLTF", "USDZ", "3MF"]),
    ("convert_model", {"input": TASK_ID, "format": "OBJ", "texture_format": "GIF"}, "texture_format",
     ["JPEG"]),
    ("convert_model", {"input": TASK_ID, "format": "OBJ", "fbx_preset": "blender"}, "fbx_preset", ["FBX"]),
    ("convert_model", {"input": TASK_ID, "format": "FBX", "fbx_preset": "maya"}, "fbx_preset", ["3dsmax"]),
    ("convert_model", {"input": TASK_ID, "format": "FBX", "export_orientation": "+z"}, "export_orientation",
     ["+x", "-y"]),
    ("convert_model", {"input": TASK_ID, "format": "FBX", "scale_factor": 0}, "scale_factor", ["more than 0"]),
    ("convert_model", {"input": TASK_ID, "format": "FBX", "flatten_bottom_threshold": 2},
     "flatten_bottom_threshold", ["at most 1"]),
    ("import_model", {"input": TASK_ID}, "input", ["file token", "local file", "task id"]),
]


@pytest.mark.parametrize("task_type,params,field,fragments", BAD,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_requests_raise_readable_validation_errors(request_models, E, task_type, params, field,
                                                       fragments):
    expect_invalid(request_models, E, task_type, params, field, *fragments)


def test_unknown_task_type(request_models, E):
    exc = expect_invalid(request_models, E, "teleport_model", {}, "type", "Unknown task type",
                         "text_to_model")
    assert not isinstance(exc, E.RetiredTaskType)


@pytest.mark.parametrize("task_type", ["refine_model", "stylize_model"])
def test_retired_task_types_are_refused(request_models, E, task_type):
    with pytest.raises(E.RetiredTaskType) as info:
        request_models.build_request(task_type, draft_model_task_id=TASK_ID)
    assert isinstance(info.value, E.ValidationError) and isinstance(info.value, ValueError)
    assert "retired by Tripo" in info.value.user_message()
    assert task_type not in request_models.REQUEST_CLASSES


def test_several_problems_are_reported_together(request_models, E):
    exc = expect_invalid(request_models, E, "text_to_model",
                         {"prompt": "x", "face_limit": "a", "texture_quality": "q"},
                         None, "face_limit", "texture_quality")
    assert {f for f, _ in exc.problems} == {"face_limit", "texture_quality"}


def test_validate_request_rechecks_a_copied_request(request_models, E):
    request = request_models.build_request("text_to_model", prompt="x")
    broken = request.model_copy(update={"face_limit": 5})  # model_copy skips validation
    with pytest.raises(E.ValidationError) as info:
        request_models.validate_request(broken)
    assert info.value.field == "face_limit"


def test_load_request_does_not_touch_files(request_models, tmp_path):
    missing = str(tmp_path / "gone.png")
    request = request_models.load_request("image_to_model", {"input": missing, "face_limit": None})
    assert [r.name for r in request.local_files()] == ["input"]


# --------------------------------------------------------------------------- local files

@pytest.mark.parametrize("maker,fmt", [
    (lambda p: write_png(p / "a.png", 300, 200), "png"),
    (lambda p: write_jpeg_header(p / "a.jpg", 300, 200), "jpeg"),
    (lambda p: write_webp_header(p / "a.webp", 300, 200, "VP8 "), "webp"),
    (lambda p: write_webp_header(p / "b.webp", 300, 200, "VP8L"), "webp"),
    (lambda p: write_webp_header(p / "c.webp", 300, 200, "VP8X"), "webp"),
])
def test_validate_image_file_reads_headers(inputs, tmp_path, maker, fmt):
    assert inputs.validate_image_file(maker(tmp_path)) == (fmt, 300, 200)


def test_image_type_is_checked_by_content_not_extension(inputs, E, tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"GIF89a" + b"\x00" * 40)
    with pytest.raises(E.ValidationError) as info:
        inputs.validate_image_file(fake)
    assert "GIF" in info.value.message and "PNG, JPEG" in info.value.message
    jpeg_named_png = write_jpeg_header(tmp_path / "x.png", 100, 100)
    assert inputs.validate_image_file(jpeg_named_png)[0] == "jpeg"


@pytest.mark.parametrize("width,height", [(19, 100), (100, 19), (6001, 100), (100, 6001)])
def test_image_sides_must_be_20_to_6000(inputs, E, tmp_path, width, height):
    path = write_jpeg_header(tmp_path / "big.jpg", width, height)
    with pytest.raises(E.ValidationError) as info:
        inputs.validate_image_file(path, field="input")
    assert f"{width}x{height}" in info.value.message and "20 and 6000" in info.value.message
    assert info.value.field == "input"


def test_image_edges_accepted(inputs, tmp_path):
    assert inputs.validate_image_file(write_jpeg_header(tmp_path / "a.jpg", 20, 6000))[1:] == (20, 6000)


@pytest.mark.parametrize("content,fragment", [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00", "damaged"),
    (b"\xff\xd8\xff\xe0\x00\x10", "damaged"),
    (b"hello world, not an image", "not a PNG, JPEG or WebP"),
])
def test_unreadable_images(inputs, E, tmp_path, content, fragment):
    path = tmp_path / "img.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(E.ValidationError) as info:
        inputs.validate_image_file(path)
    assert fragment in info.value.message


def test_build_request_checks_local_image_inputs(request_models, E, tmp_path):
    good = write_png(tmp_path / "front.png", 64, 64)
    request = request_models.build_request("image_to_model", input=str(good))
    assert [(r.name, r.kind) for r in request.local_files()] == [("input", "image")]
    tiny = write_png(tmp_path / "tiny.png", 10, 10)
    exc = expect_invalid(request_models, E, "multiview_to_model",
                         {"inputs": [str(good), None, str(tiny), None]}, "inputs[2]", "tiny.png", "10x10")
    assert exc.field == "inputs[2]"
    expect_invalid(request_models, E, "texture_model",
                   {"input": TASK_ID, "texture_prompt": {"style_image": str(tmp_path / "none.png")}},
                   "texture_prompt.style_image", "does not exist")


def test_model_files_for_import(request_models, E, tmp_path):
    glb = write_glb(tmp_path / "chair.glb")
    assert request_models.build_request("import_model", input=str(glb)).local_files()[0].kind == "model"
    gltf = tmp_path / "chair.gltf"
    gltf.write_text("{}")
    expect_invalid(request_models, E, "import_model", {"input": str(gltf)}, "input", ".glb")
    blend = tmp_path / "chair.blend"
    blend.write_bytes(b"BLENDER")
    expect_invalid(request_models, E, "import_model", {"input": str(blend)}, "input",
                   ".glb, .fbx, .obj, .stl")
    bad_glb = tmp_path / "bad.glb"
    bad_glb.write_bytes(b"not a glb")
    expect_invalid(request_models, E, "import_model", {"input": str(bad_glb)}, "input", "not a valid .glb")


def test_with_inputs_replaces_local_paths(request_models, tmp_path):
    a = write_png(tmp_path / "a.png")
    b = write_png(tmp_path / "b.png")
    request = request_models.build_request("multiview_to_model", inputs=[str(a), str(b), None, str(a)])
    refs = request.local_files()
    assert [r.path for r in refs] == [("inputs", 0), ("inputs", 1), ("inputs", 3)]
    swapped = request.with_inputs({r.path: f"file_{i}" for i, r in enumerate(refs)})
    assert swapped.to_body()["inputs"] == ["file_0", "file_1", None, "file_2"]
    assert swapped.local_files() == []


def test_classify_input(inputs):
    kind = inputs.InputKind
    assert inputs.classify_input(TASK_ID) is kind.TASK_ID
    assert inputs.classify_input("file_0a1b") is kind.FILE_TOKEN
    assert inputs.classify_input("HTTPS://x.org/a.png") is kind.URL
    assert inputs.classify_input(str(Path("/tmp/a.png").resolve())) is kind.LOCAL_FILE


# --------------------------------------------------------------------------- chain rules

CHAIN_OK = [
    ("texture_model", "text_to_model"), ("texture_model", "import_model"), ("texture_model", "texture_model"),
    ("mesh_segmentation", "highpoly_to_lowpoly"), ("mesh_segmentation", "multiview_to_model"),
    ("mesh_completion", "mesh_segmentation"),
    ("highpoly_to_lowpoly", "mesh_completion"), ("highpoly_to_lowpoly", "mesh_segmentation"),
    ("animate_prerigcheck", "texture_model"), ("animate_rig", "highpoly_to_lowpoly"),
    ("animate_rig", "mesh_uv"), ("animate_retarget", "animate_rig"),
    ("convert_model", "animate_retarget"), ("convert_model", "convert_model"),
    ("convert_model", "highpoly_to_lowpoly"), ("convert_model", "mesh_uv"), ("convert_model", "uv_unwrap"),
    ("mesh_uv", "highpoly_to_lowpoly"), ("image_to_model", "text_to_image"),
    ("multiview_to_model", "generate_multiview_image"), ("edit_multiview_image", "generate_multiview_image"),
]
CHAIN_BAD = [
    ("animate_retarget", "text_to_model", "Retargeting needs a rig task"),
    ("animate_retarget", "animate_retarget", "rig task"),
    ("mesh_completion", "texture_model", "Completion needs a segmentation task"),
    ("texture_model", "mesh_segmentation", "Texturing"),
    ("texture_model", "text_to_image", "Texturing"),
    ("convert_model", "mesh_completion", "cannot take the result of a Part completion task"),
    ("animate_rig", "convert_model", "cannot take the result of a Convert task"),
    ("animate_rig", "text_to_image", "Rig cannot take"),
    ("highpoly_to_lowpoly", "animate_rig", "Smart low poly cannot take"),
    ("mesh_segmentation", "mesh_completion", "Segmentation cannot take"),
    ("image_to_model", "text_to_model", "Image to model cannot take"),
]


@pytest.mark.parametrize("task_type,source", CHAIN_OK)
def test_chain_rules_accept(chains, task_type, source):
    chains.check_chain(task_type, source)
    chains.check_chain(task_type, source, "success")


@pytest.mark.parametrize("task_type,source,fragment", CHAIN_BAD)
def test_chain_rules_refuse(chains, E, task_type, source, fragment):
    with pytest.raises(E.ValidationError) as info:
        chains.check_chain(task_type, source)
    assert fragment in info.value.message
    assert info.value.field == "input"


def test_chain_rule_table_matches_tripos_documented_rules(chains):
    gen = {"text_to_model", "image_to_model", "multiview_to_model"}
    rules = chains.CHAIN_RULES
    assert rules["texture_model"] == gen | {"texture_model", "import_model"}
    assert rules["mesh_segmentation"] == gen | {"texture_model", "import_model", "highpoly_to_lowpoly"}
    assert rules["mesh_completion"] == {"mesh_segmentation"}
    assert rules["highpoly_to_lowpoly"] == gen | {"texture_model", "import_model", "mesh_segmentation",
                                                  "mesh_completion"}
    assert rules["animate_retarget"] == {"animate_rig"}
    assert rules["animate_rig"] == rules["animate_prerigcheck"]
    assert gen | {"texture_model", "import_model", "animate_rig", "animate_retarget",
                  "convert_model"} <= rules["convert_model"]
    assert "text_to_image" not in chains.MODEL_PRODUCING_TYPES and "mesh_uv" in chains.MODEL_PRODUCING_TYPES


def test_chain_source_must_have_succeeded(chains, E):
    with pytest.raises(E.ValidationError) as info:
        chains.check_chain("texture_model", "text_to_model", "running")
    assert "not finished successfully" in info.value.message


def test_chain_for_unchained_and_retired_types(chains, E):
    with pytest.raises(E.ValidationError, match="does not take another task"):
        chains.check_chain("text_to_model", "text_to_image")
    with pytest.raises(E.RetiredTaskType):
        chains.check_chain("stylize_model", "text_to_model")


# --------------------------------------------------------------------------- task parsing


def test_task_parsing_success(records):
    task = records.Task.from_api({
        "task_id": "t1", "type": "text_to_model", "status": "success", "progress": 100,
        "input": {"prompt": "x"}, "credits_consumed": "40", "created_at": "2026-04-28T12:00:00Z",
        "completed_at": "2026-04-28T12:01:00Z",
        "output": {"model_url": "https://h/x.glb?sig=1", "rendered_image_url": "https://h/x.webp",
                   "pbr_model_url": "https://h/p.glb", "faces": 1234},
    })
    assert task.is_finished and task.is_success
    assert task.credits_consumed == 40.0
    assert task.output.model_url.endswith("sig=1")
    assert task.output.model_extra == {"pbr_model_url": "https://h/p.glb", "faces": 1234}
    assert task.output.urls() == {"model_url": "https://h/x.glb?sig=1",
                                  "rendered_image_url": "https://h/x.webp",
                                  "pbr_model_url": "https://h/p.glb"}
    assert task.output.get_url("pbr_model_url") == "https://h/p.glb"


def test_task_parsing_is_defensive(records):
    task = records.Task.from_api({"status": "exploded", "progress": None, "output": None, "input": "x",
                                  "error_msg": "boom", "error_code": "2008", "queuing_num": "3",
                                  "running_left_time": 12.5, "credits_consumed": None},
                                 task_id="t2")
    assert task.task_id == "t2"
    assert task.status is records.TaskStatus.UNKNOWN and not task.is_finished and not task.is_success
    assert task.progress == 0 and task.input == {} and task.output.model_url is None
    assert task.error_message == "boom" and task.error_code == 2008
    assert task.queuing_num == 3 and task.running_left_time == 12.5
    assert records.Task.from_api(None, task_id="t3").status is records.TaskStatus.UNKNOWN
    assert records.Task.from_api({"progress": 42.6}).progress == 43


@pytest.mark.parametrize("raw,status,finished", [
    ("queued", "queued", False), ("RUNNING", "running", False), ("success", "success", True),
    ("failed", "failed", True), ("cancelled", "cancelled", True), ("canceled", "cancelled", True),
    ("banned", "failed", True), ("expired", "failed", True), ("paused", "unknown", False),
    ("unknown", "unknown", False),
])
def test_task_status_values(records, raw, status, finished):
    parsed = records.TaskStatus(raw)
    assert parsed.value == status and parsed.is_finished is finished


def test_task_output_aliases(records):
    out = records.Task.from_api({"status": "success", "output": {
        "riggable": True, "topology": "quadruped",
        "generate_multiview_image": {"front_view_url": "https://h/f.png", "left_view_url": "https://h/l.png",
                                     "back_view_url": None, "right_view_url": "https://h/r.png"}}}).output
    assert out.riggable is True and out.rig_type == "quadruped"
    assert out.multiview["front_view_url"] == "https://h/f.png"
    assert out.get_url("multiview.left_view_url") == "https://h/l.png"
    assert out.get_url("multiview:right") == "https://h/r.png"
    assert "multiview.back_view_url" not in out.urls()


def test_task_type_aliases(records):
    assert records.Task.from_api({"type": "uv_unwrap"}).type == "mesh_uv"
    assert records.UsageItem.model_validate({"task_id": "a", "type": "uv_unwrap"}).type == "mesh_uv"


# --------------------------------------------------------------------------- errors

ERROR_ROWS = [
    (500, 1000, "ServerError"), (500, 1001, "ServerError"),
    (401, 1002, "AuthenticationError"), (401, 2, "AuthenticationError"), (401, 1000, "AuthenticationError"),
    (401, None, "AuthenticationError"),
    (400, 1003, "BadRequest"), (400, 1004, "BadRequest"), (403, 1005, "PermissionDenied"),
    (429, 1007, "RateLimited"), (429, 2000, "ConcurrencyLimited"), (404, 2001, "TaskNotFound"),
    (400, 2006, "InvalidSourceTask"), (400, 2007, "InvalidSourceTask"), (400, 2008, "ContentPolicyError"),
    (403, 2010, "InsufficientCredits"), (400, 2015, "InvalidModelVersion"),
    (400, 2017, "InvalidModelVersion"), (400, 2018, "ModelTooComplex"),
    (502, None, "ServerError"), (503, 9999, "ServerError"), (429, None, "RateLimited"),
    (400, 9999, "BadRequest"),
]


@pytest.mark.parametrize("status,code,cls_name", ERROR_ROWS)
def test_error_from_response_table(E, status, code, cls_name):
    payload = None if code is None else {"code": code, "message": "server says no",
                                         "suggestion": "do the thing", "request_id": "req_1"}
    exc = E.error_from_response(status, payload, {"Retry-After": "7"})
    assert type(exc).__name__ == cls_name
    assert exc.http_status == status
    if code is not None:
        assert exc.code == code and exc.request_id == "req_1"
        assert "server says no" in exc.user_message() and "do the thing" in exc.user_message()
        assert "req_1" in exc.user_message()
    if cls_name in ("RateLimited", "ConcurrencyLimited"):
        assert exc.retry_after == 7.0


def test_errors_have_default_advice_and_header_request_id(E):
    exc = E.error_from_response(403, {"code": 2010}, {"X-Request-Id": "req_h"})
    assert exc.request_id == "req_h"
    text = exc.user_message()
    assert "credits" in text.lower() and "top up" in text.lower()
    assert not issubclass(E.ConcurrencyLimited, E.RateLimited)
    assert issubclass(E.InvalidApiKeyFormat, E.ValidationError)
    assert E.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert E.parse_retry_after("bogus") is None


# --------------------------------------------------------------------------- costs

CREDIT_EXAMPLES = [  # 3D AI Studio's published worked examples of credit costs
    ("text_to_model", {"prompt": "x"}, 40),
    ("image_to_model", {"input": TASK_ID}, 60),
    ("text_to_model", {"prompt": "x", "texture_quality": "detailed", "geometry_quality": "detailed"}, 100),
    ("image_to_model", {"input": TASK_ID, "texture_quality": "detailed", "geometry_quality": "detailed"}, 120),
    ("text_to_model", {"prompt": "x", "quad": True}, 50),
    ("text_to_model", {"prompt": "x", "smart_low_poly": True}, 60),
    ("text_to_model", {"prompt": "x", "texture": False}, 20),
    ("image_to_model", {"input": TASK_ID, "texture": False}, 40),
    ("text_to_model", {"prompt": "x", "model": "P1-20260311"}, 80),
    ("image_to_model", {"input": TASK_ID, "model": "P1-20260311"}, 100),
]


@pytest.mark.parametrize("task_type,params,credits", CREDIT_EXAMPLES)
def test_credit_examples_of_the_published_table(tmod, request_models, task_type, params, credits):
    estimate = tmod("core.costs").estimate_credits(request_models.build_request(task_type, **params))
    assert estimate.credits == credits
    assert sum(v for _, v in estimate.breakdown) == credits
    assert estimate.is_estimate and not estimate.is_guess
    assert estimate.describe() == f"≈ {credits} credits (estimate)"


OTHER_COSTS = [
    ("multiview_to_model", {"inputs": ["file_a", "file_b", None, None], "texture": False}, 40, False),
    ("text_to_model", {"prompt": "x", "generate_parts": True, "texture": False, "pbr": False}, 60, False),
    ("texture_model", {"input": TASK_ID}, 20, False),
    ("texture_model", {"input": TASK_ID, "texture_quality": "detailed",
                       "texture_prompt": {"style_image": "file_s"}}, 50, False),
    ("convert_model", {"input": TASK_ID, "format": "FBX"}, 10, False),
    ("convert_model", {"input": TASK_ID, "format": "FBX", "fbx_preset": "blender", "bake": True}, 10, False),
    ("convert_model", {"input": TASK_ID, "format": "OBJ", "pack_uv": True}, 20, False),
    ("convert_model", {"input": TASK_ID, "format": "OBJ", "quad": True}, 30, False),
    ("mesh_segmentation", {"input": TASK_ID}, 80, False),
    ("animate_retarget", {"input": TASK_ID, "animations": ["preset:walk", "preset:run", "preset:idle"]}, 30, True),
    ("animate_rig", {"input": TASK_ID}, 25, True),
]


@pytest.mark.parametrize("task_type,params,credits,guess", OTHER_COSTS)
def test_other_cost_estimates(tmod, request_models, task_type, params, credits, guess):
    estimate = tmod("core.costs").estimate_credits(request_models.build_request(task_type, **params))
    assert (estimate.credits, estimate.is_guess) == (credits, guess)
    assert ("rough guess" in estimate.describe()) is guess


def test_every_live_type_has_an_estimate(tmod, request_models):
    costs = tmod("core.costs")
    for task_type, params, _ in GOOD:
        assert costs.estimate_credits(request_models.build_request(task_type, **params)).credits >= 0


# --------------------------------------------------------------------------- base URL, key, proxies


@pytest.mark.parametrize("url,normalised", [
    ("https://openapi.tripo3d.ai", "https://openapi.tripo3d.ai"),
    ("https://openapi.tripo3d.com/", "https://openapi.tripo3d.com"),
    ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
    ("http://localhost:9/", "http://localhost:9"),
    ("http://[::1]:8080", "http://[::1]:8080"),
])
def test_base_url_accepted(tmod, url, normalised):
    assert tmod("core.providers.http").check_base_url(url) == normalised


@pytest.mark.parametrize("url,fragment", [
    ("http://openapi.tripo3d.ai", "plain http"),
    ("http://192.168.1.10:8000", "plain http"),
    ("ftp://openapi.tripo3d.ai", "not a valid URL"),
    ("openapi.tripo3d.ai", "not a valid URL"),
    ("", "empty"),
    ("https://user:pw@openapi.tripo3d.ai", "user name"),
    ("https://openapi.tripo3d.ai/?x=1", "'?'"),
])
def test_base_url_refused(tmod, E, url, fragment):
    with pytest.raises(E.ValidationError) as info:
        tmod("core.providers.http").check_base_url(url)
    assert fragment in info.value.message and info.value.field == "base_url"


@pytest.mark.parametrize("key,fragment", [
    ("tcli_0123456789abcdef", "tcli_"), ("sk-0123456789", "start with 'tsk_'"), ("", "No Tripo API key"),
    ("tsk_abc def123", "damaged"), (None, "No Tripo API key"),
])
def test_api_key_format(tmod, E, key, fragment):
    v3 = tmod("core.providers.tripo_v3")
    with pytest.raises(E.InvalidApiKeyFormat) as info:
        v3.TripoV3Provider(key, base_url="https://openapi.tripo3d.ai")
    text = info.value.user_message()
    assert fragment in text
    assert "platform.tripo3d.ai" in text and "tcli_" in text  # where to get one, what tcli_ is
    assert v3.check_api_key("  tsk_0123456789  ") == "tsk_0123456789"


def test_provider_repr_never_shows_the_key(tmod):
    provider = tmod("core.providers.tripo_v3").TripoV3Provider("tsk_secret_0123456789")
    try:
        assert "tsk_secret" not in repr(provider) and "tsk_secret" not in str(vars(provider).get("proxy"))
    finally:
        provider.close()


def test_proxy_custom_goes_into_session(tmod, monkeypatch):
    http = tmod("core.providers.http")
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:1")
    session = http.make_session(http.ProxyConfig("custom", "http://proxy.example:3128"))
    assert session.proxies == {"http": "http://proxy.example:3128", "https": "http://proxy.example:3128"}
    assert session.trust_env is False
    settings = session.merge_environment_settings("https://openapi.tripo3d.ai/v3/x", {}, None, None, None)
    assert settings["proxies"]["https"] == "http://proxy.example:3128"


def test_proxy_none_ignores_environment(tmod, monkeypatch):
    http = tmod("core.providers.http")
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:1")
    monkeypatch.setenv("https_proxy", "http://env-proxy:1")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    none = http.make_session(http.ProxyConfig("none"))
    assert none.trust_env is False and none.proxies == {}
    assert none.merge_environment_settings("https://openapi.tripo3d.ai/", {}, None, None, None)["proxies"] == {}
    system = http.make_session(http.ProxyConfig())
    proxies = system.merge_environment_settings("https://openapi.tripo3d.ai/", {}, None, None, None)["proxies"]
    assert proxies.get("https") == "http://env-proxy:1"


@pytest.mark.parametrize("mode,url", [("custom", None), ("custom", "proxy:80"), ("auto", None)])
def test_proxy_config_refuses_nonsense(tmod, E, mode, url):
    with pytest.raises(E.ValidationError):
        tmod("core.providers.http").ProxyConfig(mode, url)


# --------------------------------------------------------------------------- read retries


def test_read_retry_backs_off_and_honours_retry_after(tmod, E):
    http = tmod("core.providers.http")
    sleeps, calls = [], []
    answers = [E.RateLimited("slow down", retry_after=3.0, http_status=429),
               E.ServerError("oops", http_status=503), E.NetworkError("cut", sent=True)]

    def read():
        calls.append(1)
        if answers:
            raise answers.pop(0)
        return "ok"

    policy = http.RetryPolicy(max_attempts=5, base_delay=0.5, jitter=0.0)
    assert http.call_with_retry(read, policy=policy, sleep=sleeps.append) == "ok"
    assert len(calls) == 4 and sleeps == [3.0, 1.0, 2.0]


def test_read_retry_is_bounded_and_skips_refusals(tmod, E):
    http = tmod("core.providers.http")
    sleeps = []

    def always_500():
        raise E.ServerError("down", http_status=500, code=1000)

    with pytest.raises(E.ServerError):
        http.call_with_retry(always_500, policy=http.RetryPolicy(max_attempts=3, jitter=0), sleep=sleeps.append)
    assert len(sleeps) == 2

    def refused():
        sleeps.append("called")
        raise E.BadRequest("no", code=1004, http_status=400)

    sleeps.clear()
    with pytest.raises(E.BadRequest):
        http.call_with_retry(refused, sleep=lambda s: pytest.fail("must not wait"))
    assert sleeps == ["called"]

    def long_wait():
        raise E.RateLimited("later", retry_after=600, http_status=429)

    with pytest.raises(E.RateLimited):  # would pass the total time budget: give up at once
        http.call_with_retry(long_wait, policy=http.RetryPolicy(max_total_seconds=60),
                             sleep=lambda s: pytest.fail("must not wait"))


def test_the_panels_texture_option_rules_are_the_validators(request_models, vocabulary, E):
    """texture_option_conflicts (what the Selection panel greys out) refuses exactly what
    TextureModelRequest refuses, for every texture model, quality and delight choice."""
    for model in vocabulary.TEXTURE_MODELS:
        conflicts = vocabulary.texture_option_conflicts(model)
        for quality in vocabulary.TEXTURE_QUALITIES:
            for delight in (None, False, True):
                params = {"input": TASK_ID, "model": model, "texture_quality": quality}
                if delight is not None:
                    params["delight"] = delight
                expected = (quality == "fast" and "texture_quality" in conflicts) or \
                    (delight is not None and "delight" in conflicts)
                if expected:
                    with pytest.raises(E.ValidationError, match="v3.5"):
                        request_models.build_request("texture_model", **params)
                else:
                    request_models.build_request("texture_model", **params)
    assert vocabulary.texture_option_conflicts(vocabulary.TEXTURE_V35_MODEL) == {}
    assert set(vocabulary.texture_option_conflicts(vocabulary.DEFAULT_TEXTURE_MODEL)) == {
        "texture_quality", "delight"}

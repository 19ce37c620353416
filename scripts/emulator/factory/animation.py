"""Animation (op `retarget`): keyframed clips on a rig."""

from __future__ import annotations

import math
import re

import bpy  # first: with the bpy module from PyPI, bmesh and mathutils only exist after it
from mathutils import Quaternion, Vector

from .common import FPS, FactoryError, digest, glb_json, rng_for
from .scene import export_glb, import_model, mesh_objects, reset_scene, scene_objects, world_bbox
from .preview import render_preview


# Per preset: cycle period (s), amplitude in degrees per bone category, forward speed (m/s,
# only when not animate_in_place) and jump height (fraction of the model's height).
PRESETS = {
    "idle": dict(period=1.0, amp={"spine": 4, "head": 8, "arm_upper": 6, "tail": 12}),
    "walk": dict(period=1.0, amp={"leg_upper": 25, "leg_lower": 20, "arm_upper": 18, "spine": 3,
                                  "tail": 10, "chain": 12}, speed=1.2),
    "run": dict(period=0.5, amp={"leg_upper": 45, "leg_lower": 40, "arm_upper": 35, "spine": 6,
                                 "tail": 20, "chain": 22}, speed=3.0),
    "jump": dict(period=1.0, amp={"leg_upper": 30, "leg_lower": 45, "arm_upper": 60}, jump=0.3),
    "dance": dict(period=0.5, amp={"spine": 15, "head": 20, "arm_upper": 70, "arm_lower": 40}),
    "wave": dict(period=0.5, amp={"arm_upper": 50, "arm_lower": 35}),
    "turn": dict(period=1.0, amp={"spine": 20, "head": 30}),
    "attack": dict(period=1.0, amp={"arm_upper": 80, "arm_lower": 50, "spine": 20}),
    "fly": dict(period=0.5, amp={"arm_upper": 50, "arm_lower": 30, "tail": 15, "chain": 10}),
    "swim": dict(period=1.0, amp={"spine": 20, "tail": 35, "chain": 25}),
}

CATEGORY_PATTERNS = [
    ("leg_lower", r"shin|calf|lower_?leg|leg.*lower|foot|toe|heel"),
    ("leg_upper", r"thigh|upper_?leg|leg"),
    ("arm_lower", r"forearm|lower_?arm|hand|palm|f_"),  # f_: Rigify finger bones
    ("arm_upper", r"upper_?arm|arm|wing|shoulder"),
    ("head", r"head|neck|jaw"),
    ("tail", r"tail"),
    ("spine", r"spine|chest|torso|hips|pelvis|body"),
]


def bone_category(name: str) -> str:
    low = name.lower()
    for category, pattern in CATEGORY_PATTERNS:
        if re.search(pattern, low):
            return category
    return "other"


def bone_side(name: str) -> int:
    """-1 left, +1 right, 0 centre, from the usual naming conventions (.L, _L, left...)."""
    low = name.lower()
    if re.search(r"(\.|_|-)l($|\.|_|\d)|left", low):
        return -1
    if re.search(r"(\.|_|-)r($|\.|_|\d)|right", low):
        return 1
    return 0


def animation_name(spec: str) -> str:
    """'preset:walk' -> 'walk'; 'preset:quadruped:walk' -> 'walk'."""
    name = spec[len("preset:"):] if spec.startswith("preset:") else spec
    return name.split(":")[-1] or "animation"


def root_bone(arm):
    roots = [b for b in arm.data.bones if b.parent is None]
    return max(roots, key=lambda b: len(b.children_recursive)) if roots else None


def keyframe_action(arm, name: str, in_place: bool, height: float):
    """Creates one action on the armature with sine motions (a 1 s loop at 24 fps)."""
    preset = PRESETS.get(name)
    rng = rng_for("animation", name)
    if preset is None:  # unknown preset: a deterministic motion of its own
        categories = ["spine", "head", "arm_upper", "arm_lower", "leg_upper", "leg_lower", "tail", "chain"]
        preset = dict(period=rng.choice((0.5, 1.0)),
                      amp={c: rng.uniform(10, 40) for c in rng.sample(categories, 4)})
    axis_index = digest("axis", name)[0] % 3 if name not in ("walk", "run", "jump") else 0
    pose_bones = list(arm.pose.bones)
    chain_index = {pb.name: i for i, pb in enumerate(pose_bones)}

    def motion(pb):
        cat = bone_category(pb.name)
        amp = preset["amp"].get(cat, 0)
        if not amp and cat in ("spine", "other") and "chain" in preset["amp"]:
            amp = preset["amp"]["chain"]  # serpentine/others rigs: a travelling wave
        side = bone_side(pb.name)
        index = chain_index[pb.name]
        phase = (math.pi if side > 0 else 0.0) + (index * 0.6 if cat in ("spine", "other", "tail") else 0)
        digits = re.findall(r"\d+", pb.name)
        if digits and cat.startswith("leg"):
            phase += math.pi * (int(digits[-1]) % 2)  # alternating gaits for many legs
        return amp, phase

    motions = {pb.name: motion(pb) for pb in pose_bones}
    if not any(amp for amp, _ in motions.values()):
        # No bone matched the preset's categories: move a few bones chosen from the name.
        for pb in rng.sample(pose_bones, min(4, len(pose_bones))):
            motions[pb.name] = (rng.uniform(15, 35), rng.uniform(0, math.pi))

    ad = arm.animation_data or arm.animation_data_create()
    action = bpy.data.actions.new(name)
    ad.action = action
    root = root_bone(arm)
    frames = list(range(1, FPS + 2, 3))  # 1..25 every 3 frames
    for pb in pose_bones:
        pb.rotation_mode = "QUATERNION"
    for frame in frames:
        t = (frame - 1) / FPS
        for pb in pose_bones:
            amp, phase = motions[pb.name]
            if not amp:
                continue
            angle = math.radians(amp) * math.sin(2 * math.pi * t / preset["period"] + phase)
            axis = Vector([1.0 if i == axis_index else 0.0 for i in range(3)])
            pb.rotation_quaternion = Quaternion(axis, angle)
            pb.keyframe_insert("rotation_quaternion", frame=frame, group=pb.name)
        if root is not None and (preset.get("jump") or (preset.get("speed") and not in_place)):
            offset = Vector((0.0, 0.0, 0.0))
            if preset.get("speed") and not in_place:
                offset.y = -preset["speed"] * t  # forward is -Y
            if preset.get("jump"):
                offset.z = preset["jump"] * height * max(math.sin(math.pi * t), 0.0)
            # Pose locations are in the bone's rest frame: convert the armature-space offset.
            pb = arm.pose.bones[root.name]
            pb.location = root.matrix_local.to_3x3().inverted() @ (
                arm.matrix_world.to_3x3().inverted() @ offset)
            pb.keyframe_insert("location", frame=frame, group=pb.name)
    # Each action goes to its own NLA track, where the glTF exporter (ACTIONS mode) finds it;
    # the active slot is then freed for the next action.
    track = ad.nla_tracks.new()
    track.name = name
    track.strips.new(name, frames[0], action)
    ad.action = None
    for pb in pose_bones:  # back to the rest pose
        pb.rotation_quaternion = Quaternion()
        pb.location = Vector()
    return action


def op_retarget(req: "Request"):
    p = req.params
    specs = [str(s) for s in (p.get("animations") or ["preset:idle"])]
    in_place = bool(p.get("animate_in_place", False))
    import_model(req.input("model"), req.work_dir)
    arms = scene_objects("ARMATURE")
    if not arms:
        raise FactoryError("the model has no armature: rig it first")
    arm = arms[0]
    # Actions that came with the file are dropped: the output holds exactly the requested ones.
    for obj in scene_objects():
        if obj.animation_data:
            obj.animation_data_clear()
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)
    lo, hi = world_bbox(mesh_objects())
    height = float(hi[2] - lo[2])
    names = []
    for spec in specs:
        name = animation_name(spec)
        base, n = name, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        keyframe_action(arm, name, in_place, height)
        names.append(name)
    bpy.context.scene.frame_set(1)
    model = export_glb(req.out_dir / "model.glb", animations=True)
    image = render_preview(req.out_dir)
    gltf_names = [a.get("name") for a in glb_json(model).get("animations", [])]
    # Check what a glTF importer makes of it (the names the add-on will see).
    reset_scene()
    import_model(model, req.work_dir)
    imported = sorted(a.name for a in bpy.data.actions)
    info = {"animations": names, "gltf_animation_names": gltf_names,
            "action_names_on_import": imported, "frames": FPS + 1, "fps": FPS,
            "animate_in_place": in_place}
    return {"model": model, "rendered_image": image}, info

"""What a resume compares: run settings through JSON, defaults of fields added later, paths."""

from dataclasses import dataclass, field

from group_scissor.resume import explain, run_diff, run_json
from mapping.spec import CrossbarSpec


@dataclass(frozen=True)
class Inner:
    a: int = 1
    b: float = 2.0


@dataclass(frozen=True)
class Outer:
    x: tuple[str, ...] = ("fc1",)
    inner: Inner = field(default_factory=Inner)
    new: bool = False  # as if added after a run was saved


def test_same_settings_through_json_do_not_differ():
    run = {"stage": "prune", "cfg": Outer(), "crossbar": CrossbarSpec(64, 64), "n": 3}
    assert run_diff(run_json(run), run) == {}
    assert run_diff(run_json(run), {**run, "n": 3.0}) == {}  # 3 and 3.0 are one value


def test_keys_on_one_side_only_differ():
    assert run_diff({"stage": "clip", "clip": {"t": 1}}, {"stage": "clip"}) == {
        "clip.t": (1, None)}


def test_files_compare_as_real_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved = {"init_checkpoint": "runs/a.pt", "distill": {"teacher": "t.pt"}}
    same = {"init_checkpoint": str(tmp_path / "runs" / "a.pt"),
            "distill": {"teacher": "./t.pt"}}
    assert run_diff(saved, same) == {}
    assert run_diff(saved, {**same, "init_checkpoint": "runs/b.pt"}) == {
        "init_checkpoint": (str(tmp_path / "runs" / "a.pt"), str(tmp_path / "runs" / "b.pt"))}
    # an ONNX model is a file (compile records it absolute); a registered name is not a path
    assert run_diff({"model": "nets/a.onnx"}, {"model": str(tmp_path / "nets" / "a.onnx")}) == {}
    assert run_diff({"model": "lenet"}, {"model": "convnet"}) == {"model": ("lenet", "convnet")}


def test_explain_names_what_derived_steps_follow():
    text = explain({"delete_step": (23, 46), "prune.lambda_": (0.1, 0.2)})
    assert text == ("delete_step: 23 -> 46; prune.lambda_: 0.1 -> 0.2; delete_step follows "
                    "--epochs and --fine-tune-epochs")
    assert explain({f"k{i}": (i, i + 1) for i in range(8)}, limit=2) == "k0: 0 -> 1; k1: 1 -> 2; ..."

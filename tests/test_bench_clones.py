"""`asdflow bench clones`: the clone batch's speed-up, its FLOP bound and the phase profile."""

from asdflow.bench import clones


def test_clones_are_timed_side_by_side_with_their_flop_bound(capsys):
    result = clones.bench_clones(rows=16, n_frames=64, steps=1, profile_steps=1)
    # one teacher pass serves 16 rows: fewer FLOPs per step at the same student rows
    assert 0 < result["clone16_gflop_per_step"] < result["clone1_gflop_per_step"]
    assert result["ratio_flop_bound_16_vs_1"] == (
        result["clone1_gflop_per_step"] / result["clone16_gflop_per_step"]
    )
    assert result["ratio_student_clips_per_s_16_vs_1"] == (
        result["clone16_student_clips_per_s"] / result["clone1_student_clips_per_s"]
    )
    teacher = result["phases"]["clone_batch 16 (s/step)"]["ufo.teacher"]
    assert teacher > 0
    out = capsys.readouterr().out
    assert "ratio_flop_bound_16_vs_1" in out and "sum of the phases" in out


def test_adamw_is_timed_loop_against_fused_with_the_same_update(capsys):
    result = clones.bench_adamw(steps=2)
    for stage in ("pretrain", "finetune"):
        assert result[f"{stage}_loop_ms_per_step"] > 0 and result[f"{stage}_fused_ms_per_step"] > 0
        assert result[f"{stage}_max_param_difference"] < 1e-6
    # the trained parameters only: the pre-training teacher is not optimised
    assert result["pretrain_parameters_M"] < 2 * result["finetune_parameters_M"]
    assert "pretrain_ratio_loop_vs_fused" in capsys.readouterr().out

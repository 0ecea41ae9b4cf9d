"""`pscl bench speed`: every row measured, FLOPs counted, the table names the CPU."""
from pscl.bench.speed import SpeedConfig, measure_speed, speed_table

TINY = SpeedConfig(name="tiny", widths=(8, 16, 32, 64), crop=32, pretrain_batch=4, finetune_crop=32, finetune_batch=2,
                   steps=1, warmup=1, image_size=(70, 90), tile=64, overlap=16)


def test_speed_rows_count_flops_and_compare_modes():
    result = measure_speed(["simclr", "pscl-simclr"], [TINY], isolated=False)
    rows = result["rows"]
    assert [(r["mode"], r["stage"]) for r in rows] == [(m, s) for m in ("fp32", "default")
                                                       for s in ("pretrain", "pretrain", "finetune", "inference")]
    trained = [r for r in rows if r["stage"] != "inference"]
    assert all(r["gflop_per_step"] > 0 and r["s_per_step"] > 0 for r in trained)
    by_mode = {(r["mode"], r["method"], r["stage"]): r["gflop_per_step"] for r in trained}
    # PSCL runs both views through the whole U-Net; SimCLR only through the encoder
    assert by_mode[("fp32", "pscl-simclr", "pretrain")] > 2 * by_mode[("fp32", "simclr", "pretrain")]
    # the layout changes no arithmetic
    assert by_mode[("fp32", "simclr", "pretrain")] == by_mode[("default", "simclr", "pretrain")]
    table = speed_table(result)
    assert table.startswith("CPU: ") and "1.00x" in table and table.count("| tiny |") == len(rows)

"""Unusual but legitimate inputs to tools/predict.py, and bad ones that used to slip through the checks:
legitimate ones are predicted as the model's training frames look, bad ones are one ``error:`` line naming the
file, exit status 2, and nothing already in the output folder is lost."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("argv,joined", [
    (["--angles", "-30,25"], ["--angles=-30,25"]),
    (["--angles", "-.5,10"], ["--angles=-.5,10"]),  # argparse took "-.5,10" for an option: "expected one argument"
    (["--angles", "30,-25"], ["--angles", "30,-25"]),
    (["--angles", "--quiet"], ["--angles", "--quiet"]),
])
def test_a_negative_first_angle_is_a_value_not_an_option(argv, joined):
    from sam3_angio.inference.cli import build_parser, join_negative_values

    assert join_negative_values(argv) == joined
    if argv[1] != "--quiet":
        args = build_parser().parse_intermixed_args(join_negative_values(
            ["x.png", "--checkpoint", "c.pt", "--out", "o", *argv]))
        assert args.angles == argv[1]
